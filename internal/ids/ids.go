// Package ids makes the identifiers hookmesh stores: time-ordered random ids
// for new things, and deterministic ids for things that must be created at
// most once (an insert with a deterministic _id is the de-duplication).
package ids

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base32"
	"encoding/binary"
	"strings"
	"time"
)

// encoding is Crockford-like lower-case base32 without padding; its
// alphabet is in ASCII order, so ids sort like the bytes they encode.
var encoding = base32.NewEncoding("0123456789abcdefghjkmnpqrstvwxyz").WithPadding(base32.NoPadding)

// New returns prefix + "_" + 26 characters: 48 bits of milliseconds since the
// Unix epoch followed by 80 random bits. Ids made later sort later (to the
// millisecond), which keeps cursor pagination and indexes append-only.
func New(prefix string) string {
	return NewAt(prefix, time.Now())
}

// NewAt is New with the time given.
func NewAt(prefix string, t time.Time) string {
	var b [16]byte
	ms := uint64(t.UnixMilli())
	binary.BigEndian.PutUint64(b[:8], ms<<16)
	_, _ = rand.Read(b[6:])
	return prefix + "_" + encoding.EncodeToString(b[:])
}

// Deterministic returns prefix + "_" + a hash of parts: the same parts always
// give the same id.
func Deterministic(prefix string, parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	sum := h.Sum(nil)
	return prefix + "_" + encoding.EncodeToString(sum[:16])
}

// Time returns the creation time encoded in an id made by New, and false for
// any other string.
func Time(id string) (time.Time, bool) {
	i := strings.LastIndexByte(id, '_')
	if i < 0 {
		return time.Time{}, false
	}
	b, err := encoding.DecodeString(id[i+1:])
	if err != nil || len(b) != 16 {
		return time.Time{}, false
	}
	ms := binary.BigEndian.Uint64(b[:8]) >> 16
	return time.UnixMilli(int64(ms)), true
}

// Random returns n random bytes encoded in base32, for secrets and keys.
func Random(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return encoding.EncodeToString(b)
}
