package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"time"
)

// logLine is the part of a service's JSON log line the harness reads.
type logLine struct {
	Msg       string `json:"msg"`
	NodeClaim string `json:"nodeclaim"`
	Pod       string `json:"pod"`
	Node      string `json:"node"`
}

// followLog reads the JSON lines appended to path (from its current end)
// and calls fn for each until ctx ends. Restarts of the service append to
// the same file, so one follower sees every incarnation.
func followLog(ctx context.Context, path string, fn func(logLine)) {
	var off int64
	if st, err := os.Stat(path); err == nil {
		off = st.Size()
	}
	var partial []byte
	buf := make([]byte, 64<<10)
	for ctx.Err() == nil {
		f, err := os.Open(path)
		if err == nil {
			if _, err := f.Seek(off, io.SeekStart); err == nil {
				for {
					n, rerr := f.Read(buf)
					off += int64(n)
					partial = append(partial, buf[:n]...)
					for {
						i := bytes.IndexByte(partial, '\n')
						if i < 0 {
							break
						}
						line := partial[:i]
						partial = partial[i+1:]
						if len(line) > 0 && line[0] == '{' {
							var l logLine
							if json.Unmarshal(line, &l) == nil && l.Msg != "" {
								fn(l)
							}
						}
					}
					if rerr != nil || n == 0 {
						break
					}
				}
			}
			f.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(10 * time.Millisecond):
		}
	}
}
