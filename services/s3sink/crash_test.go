package s3sink

const crashWorkerEnv = "S3SINK_CRASH_WORKER"

func runCrashWorker() int { return 2 }
