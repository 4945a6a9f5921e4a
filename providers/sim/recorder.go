package sim

import (
	"net/http"
	"sync"
	"time"
)

// Request is one request a simulator received.
type Request struct {
	Headers http.Header
	Body    []byte
	Time    time.Time
}

// Recorder counts and keeps the requests a simulator received, per device
// token. The zero value is ready to use; it is safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	byToken map[string][]Request
	total   int
}

// Record stores a request for token and returns how many requests that
// token has had, this one included.
func (r *Recorder) Record(token string, req Request) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byToken == nil {
		r.byToken = make(map[string][]Request)
	}
	r.byToken[token] = append(r.byToken[token], req)
	r.total++
	return len(r.byToken[token])
}

// Count returns how many requests token has had.
func (r *Recorder) Count(token string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byToken[token])
}

// Requests returns a copy of the requests token has had, oldest first.
func (r *Recorder) Requests(token string) []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.byToken[token]...)
}

// Total returns how many requests were recorded for all tokens.
func (r *Recorder) Total() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.total
}

// Reset forgets every request, so flaky tokens fail again.
func (r *Recorder) Reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byToken = nil
	r.total = 0
}
