package kcl

// SharedEmulators are the emulators of the package's tests, for the runnable examples of package kcl_test.
var SharedEmulators = testEmulators
