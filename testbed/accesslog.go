package testbed

import (
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// Access is one request a registry's access log saw.
type Access struct {
	Method, Path string
	Range        string // the Range header, "" for a whole body
	Status       int
	Bytes        int64 // body bytes sent back
}

// AccessLog is a plain HTTP reverse proxy on 127.0.0.1 in front of a
// registry that logs every request it passes on.
type AccessLog struct {
	Host string // 127.0.0.1:port: pull through it

	srv *httptest.Server
	mu  sync.Mutex
	log []Access
	// rate, when > 0, is the link's speed in bytes per second, shared by
	// every response body; next is when the link is free again.
	rate int64
	next time.Time
}

// SetRate makes every response body share one link of bytesPerSecond (0:
// as fast as loopback), as a registry across a network would be.
func (a *AccessLog) SetRate(bytesPerSecond int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.rate = bytesPerSecond
}

// transmit waits until n bytes have crossed the link.
func (a *AccessLog) transmit(n int) {
	a.mu.Lock()
	if a.rate <= 0 {
		a.mu.Unlock()
		return
	}
	now := time.Now()
	if a.next.Before(now) {
		a.next = now
	}
	a.next = a.next.Add(time.Duration(int64(n) * int64(time.Second) / a.rate))
	done := a.next
	a.mu.Unlock()
	time.Sleep(time.Until(done))
}

// StartAccessLog puts an AccessLog in front of reg (plain HTTP, no auth)
// and closes it when the test ends.
func StartAccessLog(t testing.TB, reg *Registry) *AccessLog {
	t.Helper()
	target, err := url.Parse(reg.URL())
	if err != nil {
		t.Fatal(err)
	}
	a := &AccessLog{}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = reg.HTTPClient().Transport
	a.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		cw := &countingWriter{ResponseWriter: w, status: http.StatusOK, link: a}
		rp.ServeHTTP(cw, r)
		a.mu.Lock()
		defer a.mu.Unlock()
		a.log = append(a.log, Access{Method: r.Method, Path: r.URL.Path, Range: r.Header.Get("Range"), Status: cw.status, Bytes: cw.n})
	}))
	a.Host = strings.TrimPrefix(a.srv.URL, "http://")
	t.Cleanup(a.srv.Close)
	return a
}

// Blob is the requests for the blob of digest d, in order.
func (a *AccessLog) Blob(d string) []Access {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []Access
	for _, e := range a.log {
		if strings.HasSuffix(e.Path, "/blobs/"+d) {
			out = append(out, e)
		}
	}
	return out
}

// Fetched is what the GETs of the blob of digest d sent back in all, and
// the GETs among them that asked for the whole blob (no Range).
func (a *AccessLog) Fetched(d string) (bytes int64, whole []Access) {
	for _, e := range a.Blob(d) {
		if e.Method != http.MethodGet {
			continue
		}
		bytes += e.Bytes
		if e.Range == "" {
			whole = append(whole, e)
		}
	}
	return bytes, whole
}

// All is every request so far, in order.
func (a *AccessLog) All() []Access {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]Access(nil), a.log...)
}

type countingWriter struct {
	http.ResponseWriter
	status int
	n      int64
	link   *AccessLog
}

func (c *countingWriter) WriteHeader(status int) {
	c.status = status
	c.ResponseWriter.WriteHeader(status)
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.link.transmit(len(p))
	n, err := c.ResponseWriter.Write(p)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
