//go:build integration

package image_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// registryProxy sits in front of a test registry on 127.0.0.1 and counts,
// holds, corrupts or refuses the requests it passes on.
type registryProxy struct {
	Host string // 127.0.0.1:port

	srv *httptest.Server

	mu       sync.Mutex
	counts   map[string]int // "METHOD /v2/..." -> requests
	corrupt  string         // path whose GET body is altered
	user     string         // basic auth required when set
	pass     string
	holdBlob chan struct{} // blob GETs wait for it to close when set
	rate     int           // blob bodies are sent at about this many bytes/s in all when > 0
	next     time.Time     // with rate: when the link is free again
	// A GET of stallBlob (a blob path, "" = none) sends stallAfter bytes
	// of the body, then nothing until unstall is closed or the client
	// goes away.
	stallBlob  string
	stallAfter int64
	unstall    chan struct{}
}

func startProxy(t *testing.T, registryHost string) *registryProxy {
	t.Helper()
	target, err := url.Parse("http://" + registryHost)
	if err != nil {
		t.Fatal(err)
	}
	p := &registryProxy{counts: map[string]int{}}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{Proxy: nil}
	rp.ModifyResponse = p.modify
	rp.FlushInterval = -1 // pass every byte on at once: a stall is a stall
	p.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p.mu.Lock()
		p.counts[r.Method+" "+r.URL.Path]++
		user, pass, hold := p.user, p.pass, p.holdBlob
		p.mu.Unlock()

		if user != "" {
			if u, pw, ok := r.BasicAuth(); !ok || u != user || pw != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				http.Error(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, http.StatusUnauthorized)
				return
			}
		}
		if hold != nil && r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/") {
			select {
			case <-hold:
			case <-r.Context().Done():
				return
			}
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(p.srv.Close)
	p.Host = strings.TrimPrefix(p.srv.URL, "http://")
	return p
}

// modify alters one byte of the body of the corrupt path, keeping its
// length, and shapes blob bodies (rate, stall).
func (p *registryProxy) modify(resp *http.Response) error {
	p.mu.Lock()
	corrupt, rate, stallBlob, stallAfter, unstall := p.corrupt, p.rate, p.stallBlob, p.stallAfter, p.unstall
	p.mu.Unlock()
	req := resp.Request
	if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") && resp.StatusCode == http.StatusOK {
		sb := &shapedBody{rc: resp.Body, ctx: req.Context(), p: p, rate: rate, stallAt: -1}
		if req.URL.Path == stallBlob {
			sb.stallAt, sb.unstall = stallAfter, unstall
		}
		resp.Body = sb
	}
	if corrupt == "" || resp.Request.Method != http.MethodGet || resp.Request.URL.Path != corrupt {
		return nil
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if i := bytes.IndexByte(body, 'a'); i >= 0 {
		body[i] = 'b'
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
	return nil
}

// count is the number of requests with method to path.
func (p *registryProxy) count(method, path string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[method+" "+path]
}

// countPrefix is the number of requests (any method) under path prefix.
func (p *registryProxy) countPrefix(prefix string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for k, v := range p.counts {
		if _, path, _ := strings.Cut(k, " "); strings.HasPrefix(path, prefix) {
			n += v
		}
	}
	return n
}

func (p *registryProxy) set(f func(p *registryProxy)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	f(p)
}

// Close stops the proxy: the registry behind it is unreachable from then on.
func (p *registryProxy) Close() { p.srv.Close() }

// shapedBody passes a blob body on at a rate and/or stops passing it on
// after stallAt bytes.
type shapedBody struct {
	rc      io.ReadCloser
	ctx     context.Context
	p       *registryProxy
	rate    int
	stallAt int64 // < 0: never
	unstall chan struct{}
	sent    int64
}

func (b *shapedBody) Read(p []byte) (int, error) {
	if b.stallAt >= 0 && b.sent >= b.stallAt {
		select {
		case <-b.unstall:
			b.stallAt = -1
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		}
	}
	if b.stallAt >= 0 && int64(len(p)) > b.stallAt-b.sent {
		p = p[:b.stallAt-b.sent]
	}
	if b.rate > 0 {
		chunk := max(b.rate/20, 1) // about 20 writes a second
		if len(p) > chunk {
			p = p[:chunk]
		}
		// One link for all bodies: wait for this chunk's turn on it.
		b.p.mu.Lock()
		now := time.Now()
		if b.p.next.Before(now) {
			b.p.next = now
		}
		b.p.next = b.p.next.Add(time.Duration(len(p)) * time.Second / time.Duration(b.rate))
		wait := b.p.next.Sub(now)
		b.p.mu.Unlock()
		select {
		case <-time.After(wait):
		case <-b.ctx.Done():
			return 0, b.ctx.Err()
		}
	}
	n, err := b.rc.Read(p)
	b.sent += int64(n)
	return n, err
}

func (b *shapedBody) Close() error { return b.rc.Close() }
