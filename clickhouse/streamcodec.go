package clickhouse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
)

// The binary encoding of buffered events (a stream entry's "events" field),
// version 1: the events one after another, each
//
//	uvarint len, workspace_id bytes
//	16 bytes campaign_id, 16 bytes delivery_id
//	uvarint round, device_index
//	1 byte kind (its events.kind Enum8 number)
//	uvarint attempt, status_code
//	uvarint len, bytes: reason, provider_id, token
//	varint delivery_created (Unix ms), varint at (Unix ns)
//
// so that the events of several Write calls concatenate into one entry.
// It replaced one JSON entry per event: a push's three events cost three
// XADDs, three XACKs and three JSON round trips.

// kindCodes are the events.kind Enum8 numbers (see 0001_baseline.sql).
var kindCodes = map[string]byte{
	KindTargeted: 1, KindAttempt: 2, KindSent: 3, KindBounced: 4, KindFailed: 5,
	KindSuppressed: 6, KindDelivered: 7, KindOpened: 8, KindConverted: 9, KindPresendFailed: 10,
}

var kindNames = func() [11]string {
	var names [11]string
	for k, c := range kindCodes {
		names[c] = k
	}
	return names
}()

// maxFieldLen bounds one string field of an encoded event: no event Herald
// writes comes near it, and a corrupt length cannot make the decoder
// allocate more.
const maxFieldLen = 1 << 20

// appendEvent appends e's encoding to b. e.Kind must be known.
func appendEvent(b []byte, e Event) []byte {
	b = appendString(b, e.WorkspaceID)
	b = append(b, e.CampaignID[:]...)
	b = append(b, e.DeliveryID[:]...)
	b = binary.AppendUvarint(b, uint64(e.Round))
	b = binary.AppendUvarint(b, uint64(e.DeviceIndex))
	b = append(b, kindCodes[e.Kind])
	b = binary.AppendUvarint(b, uint64(e.Attempt))
	b = binary.AppendUvarint(b, uint64(e.StatusCode))
	b = appendString(b, e.Reason)
	b = appendString(b, e.ProviderID)
	b = appendString(b, e.Token)
	var created, at int64
	if !e.DeliveryCreated.IsZero() {
		created = e.DeliveryCreated.UnixMilli()
	}
	if !e.At.IsZero() {
		at = e.At.UnixNano()
	}
	b = binary.AppendVarint(b, created)
	return binary.AppendVarint(b, at)
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

var errTruncated = errors.New("truncated event")

// decodeEvents decodes a concatenation of appendEvent encodings, appending
// to out. It never panics, whatever b holds.
func decodeEvents(b []byte, out []Event) ([]Event, error) {
	d := decoder{b: b}
	for len(d.b) > 0 {
		var e Event
		e.WorkspaceID = d.string()
		copy(e.CampaignID[:], d.bytes(16))
		copy(e.DeliveryID[:], d.bytes(16))
		e.Round = d.uint16()
		e.DeviceIndex = d.uint16()
		if k := d.bytes(1); len(k) == 1 && int(k[0]) < len(kindNames) && kindNames[k[0]] != "" {
			e.Kind = kindNames[k[0]]
		} else if d.err == nil {
			d.err = fmt.Errorf("unknown kind code %v", k)
		}
		e.Attempt = d.uint16()
		e.StatusCode = d.uint16()
		e.Reason = d.string()
		e.ProviderID = d.string()
		e.Token = d.string()
		if ms := d.varint(); ms != 0 {
			e.DeliveryCreated = time.UnixMilli(ms).UTC()
		}
		if ns := d.varint(); ns != 0 {
			e.At = time.Unix(0, ns).UTC()
		}
		if d.err != nil {
			return out, fmt.Errorf("event %d: %w", len(out), d.err)
		}
		out = append(out, e)
	}
	return out, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) bytes(n int) []byte {
	if d.err != nil {
		return nil
	}
	if len(d.b) < n {
		d.err = errTruncated
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err = errTruncated
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) uint16() uint16 {
	v := d.uvarint()
	if v > 0xffff && d.err == nil {
		d.err = fmt.Errorf("value %d out of range", v)
	}
	return uint16(v)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if n > maxFieldLen && d.err == nil {
		d.err = fmt.Errorf("field of %d bytes", n)
	}
	return string(d.bytes(int(n)))
}
