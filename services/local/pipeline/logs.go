package pipeline

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

// lineTail reads the complete lines appended to a file since its previous call, as `tail -f` does. A missing file
// has no lines yet. It is not safe for concurrent use.
type lineTail struct {
	path    string
	offset  int64
	partial []byte
	buf     []byte // read buffer, grown to the largest read so far (at most maxTailRead)
}

// maxTailRead bounds one read, so a large backlog is taken in steps.
const maxTailRead = 4 << 20

// next calls fn with each complete line (without its newline) written since the last call. fn must not keep line.
func (t *lineTail) next(fn func(line []byte)) error {
	f, err := os.Open(t.path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("tail %s: %w", t.path, err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return fmt.Errorf("tail %s: %w", t.path, err)
	}
	if unread := info.Size() - t.offset; unread > int64(cap(t.buf)) {
		t.buf = make([]byte, min(unread, maxTailRead))
	}
	buf := t.buf[:cap(t.buf)]
	if len(buf) == 0 {
		return nil
	}
	for {
		n, err := f.ReadAt(buf, t.offset)
		if n > 0 {
			t.offset += int64(n)
			t.partial = append(t.partial, buf[:n]...)
			rest := t.partial
			for {
				i := bytes.IndexByte(rest, '\n')
				if i < 0 {
					break
				}
				fn(rest[:i])
				rest = rest[i+1:]
			}
			t.partial = append(t.partial[:0], rest...)
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("tail %s: %w", t.path, err)
		}
	}
}
