package chembed

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"
)

// clientHello is a Hello as clickhouse-go writes it.
func clientHello(database string) []byte {
	b := binary.AppendUvarint(nil, 0)
	str := func(s string) { b = binary.AppendUvarint(b, uint64(len(s))); b = append(b, s...) }
	str("clickhouse-go/2.51.0")
	b = binary.AppendUvarint(b, 2)
	b = binary.AppendUvarint(b, 51)
	b = binary.AppendUvarint(b, 54460)
	str(database)
	str("default")
	str("")
	return b
}

func TestReadHello(t *testing.T) {
	long := binary.AppendUvarint([]byte{0}, maxHelloString+1)
	tests := []struct {
		name    string
		in      []byte
		wantDB  string
		wantErr error
	}{
		{"hello", clientHello("herald"), "herald", nil},
		{"hello then more", append(clientHello(""), 1, 2, 3), "", nil},
		{"garbage", []byte("garbage \x00\x01"), "", errNotHello},
		{"HTTP on the native port", []byte("GET / HTTP/1.1\r\n\r\n"), "", errNotHello},
		{"a string too long", long, "", errNotHello},
		{"cut short", clientHello("herald")[:10], "", io.ErrUnexpectedEOF},
		{"nothing", nil, "", io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hl, raw, err := readHello(bytes.NewReader(tt.in))
			if tt.wantErr == io.ErrUnexpectedEOF { // any read error of a cut Hello
				if err == nil {
					t.Fatalf("readHello: no error for a cut Hello")
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("readHello: err %v, want %v", err, tt.wantErr)
			}
			if err == nil && (hl.database != tt.wantDB || !bytes.Equal(raw, tt.in)) {
				t.Errorf("readHello: database %q, %d bytes kept; want %q, %d", hl.database, len(raw), tt.wantDB, len(tt.in))
			}
		})
	}
}

// fakeEngine accepts connections; for each it reads until EOF or an error
// (reported on ends) while writing without pause, and closes after the read ended.
type fakeEngine struct {
	ln   net.Listener
	ends chan error // the read error of each connection: io.EOF for a FIN
	bad  chan error // a failed write before the read ended (the engine saw a reset)
}

func newFakeEngine(t *testing.T) *fakeEngine {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	f := &fakeEngine{ln: ln, ends: make(chan error, 16), bad: make(chan error, 16)}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go f.serve(c)
		}
	}()
	return f
}

func (f *fakeEngine) serve(c net.Conn) {
	defer c.Close()
	readDone := make(chan error, 1)
	go func() {
		_, err := io.Copy(io.Discard, c)
		if err == nil {
			err = io.EOF
		}
		readDone <- err
	}()
	chunk := bytes.Repeat([]byte("x"), 32<<10)
	for {
		select {
		case err := <-readDone:
			f.ends <- err
			return
		default:
		}
		if _, err := c.Write(chunk); err != nil {
			f.bad <- err
			f.ends <- <-readDone
			return
		}
	}
}

func testProxy(t *testing.T, engineAddr string, maxConns int) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := Config{MaxConns: maxConns}.withDefaults()
	c.DialTimeout = time.Second
	p := newProxy(ln, c, func() string { return engineAddr }, func(string) error { return nil },
		slog.New(slog.DiscardHandler))
	go p.serve()
	t.Cleanup(p.close)
	return p
}

// A client that resets its connection mid-stream reaches the engine as a
// FIN, and the engine's writes never fail: the proxy drains them.
func TestProxyTurnsResetsIntoFIN(t *testing.T) {
	eng := newFakeEngine(t)
	p := testProxy(t, eng.ln.Addr().String(), 8)
	for i := range 5 {
		c, err := net.Dial("tcp", p.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(clientHello("")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 100_000)); err != nil {
			t.Fatal(err)
		}
		_ = c.(*net.TCPConn).SetLinger(0) // unread data and linger 0: a reset
		c.Close()
		select {
		case err := <-eng.ends:
			if !errors.Is(err, io.EOF) {
				t.Fatalf("client %d: the engine's read ended with %v, want EOF (a FIN)", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("client %d: the engine's connection did not end within 10 s", i)
		}
		select {
		case err := <-eng.bad:
			t.Fatalf("client %d: an engine write failed: %v", i, err)
		default:
		}
	}
}

// Over MaxConns, a new client is closed at once.
func TestProxyCapsConnections(t *testing.T) {
	eng := newFakeEngine(t)
	p := testProxy(t, eng.ln.Addr().String(), 2)
	for range 2 {
		c, err := net.Dial("tcp", p.ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.Write(clientHello("")); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, make([]byte, 10)); err != nil { // forwarded
			t.Fatal(err)
		}
	}
	c, err := net.Dial("tcp", p.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := c.Read(make([]byte, 10)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("third client: read %d bytes, err %v; want the connection closed", n, err)
	}
	if got := p.rejected.Load(); got != 1 {
		t.Errorf("rejected: got %d, want 1", got)
	}
}
