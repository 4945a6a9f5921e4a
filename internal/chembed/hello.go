package chembed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// The proxy reads each client's Hello before the engine sees the connection.
// ClickHouse's TCPHandler rethrows every exception of the hello phase (bytes
// that are not a Hello, a default database that does not exist, a client that
// never sends one) except a client gone or on the wrong port — and in chDB a
// rethrown exception aborts the engine. So the proxy forwards only a
// well-formed Hello whose database exists, and answers the rest itself.
//
// Client Hello (ClickHouse src/Server/TCPHandler.cpp receiveHello):
//
//	VarUInt packet type (0 = Hello), String client name, VarUInt major,
//	VarUInt minor, VarUInt TCP protocol version, String database,
//	String user, String password
//
// where VarUInt is LEB128 and String is a VarUInt length and the bytes.

// maxHelloString bounds each string of a Hello; real ones are short.
const maxHelloString = 16 << 10

// errNotHello marks bytes that are not a client Hello.
var errNotHello = errors.New("not a ClickHouse native-protocol Hello")

// hello is what the proxy needs from a client Hello.
type hello struct {
	client, database, user string
}

// helloReader reads a Hello and keeps every byte it read, to forward them.
type helloReader struct {
	r   io.Reader
	buf []byte // all bytes read from the client so far
	pos int    // bytes parsed
}

// fill reads until n unparsed bytes are buffered.
func (h *helloReader) fill(n int) error {
	for len(h.buf)-h.pos < n {
		if len(h.buf) > 4*maxHelloString {
			return errNotHello
		}
		chunk := make([]byte, 4096)
		k, err := h.r.Read(chunk)
		h.buf = append(h.buf, chunk[:k]...)
		if err != nil && len(h.buf)-h.pos < n {
			return err
		}
	}
	return nil
}

func (h *helloReader) uvarint() (uint64, error) {
	var x uint64
	for i := 0; i < 10; i++ {
		if err := h.fill(1); err != nil {
			return 0, err
		}
		b := h.buf[h.pos]
		h.pos++
		x |= uint64(b&0x7f) << (7 * i)
		if b < 0x80 {
			return x, nil
		}
	}
	return 0, errNotHello
}

func (h *helloReader) str() (string, error) {
	n, err := h.uvarint()
	if err != nil {
		return "", err
	}
	if n > maxHelloString {
		return "", errNotHello
	}
	if err := h.fill(int(n)); err != nil {
		return "", err
	}
	s := string(h.buf[h.pos : h.pos+int(n)])
	h.pos += int(n)
	return s, nil
}

// readHello parses a client Hello from r. It returns the bytes read (the
// Hello and whatever followed it in the same reads) for the engine.
func readHello(r io.Reader) (hello, []byte, error) {
	h := &helloReader{r: r}
	var hl hello
	typ, err := h.uvarint()
	if err != nil {
		return hl, h.buf, err
	}
	if typ != 0 {
		return hl, h.buf, fmt.Errorf("%w: packet type %d first", errNotHello, typ)
	}
	if hl.client, err = h.str(); err != nil {
		return hl, h.buf, err
	}
	for range 3 { // major, minor, protocol version
		if _, err := h.uvarint(); err != nil {
			return hl, h.buf, err
		}
	}
	if hl.database, err = h.str(); err != nil {
		return hl, h.buf, err
	}
	if hl.user, err = h.str(); err != nil {
		return hl, h.buf, err
	}
	if _, err = h.str(); err != nil { // password
		return hl, h.buf, err
	}
	return hl, h.buf, nil
}

// exceptionPacket is a server Exception packet (type 2): Int32 code, String
// name, String message, String stack trace, UInt8 has nested (0).
func exceptionPacket(code int32, message string) []byte {
	b := binary.AppendUvarint(nil, 2)
	b = binary.LittleEndian.AppendUint32(b, uint32(code))
	for _, s := range []string{"DB::Exception", message, ""} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return append(b, 0)
}

// codeUnknownDatabase is ClickHouse's UNKNOWN_DATABASE.
const codeUnknownDatabase = 81
