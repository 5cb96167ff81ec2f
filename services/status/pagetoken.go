package status

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// pageTokenVersion is the first byte of every page token, so the format can
// change without misreading old tokens.
const pageTokenVersion = 1

// pageCursor is the position after the last delivery of a page, in the
// (create_time desc, _id desc) order.
type pageCursor struct {
	createTime time.Time
	id         string
}

// fingerprint identifies a query's filters: a page token only continues
// the listing it came from.
func (q *deliveryQuery) fingerprint() [8]byte {
	statuses := make([]int, len(q.statuses))
	for i, s := range q.statuses {
		statuses[i] = int(s)
	}
	slices.Sort(statuses)
	h := sha256.New()
	for _, part := range []string{
		q.projectID, q.eventID, q.endpointID, q.eventType, fmtInts(statuses),
		timeKey(q.start), timeKey(q.end),
	} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write([]byte(part))
	}
	var out [8]byte
	copy(out[:], h.Sum(nil))
	return out
}

func fmtInts(xs []int) string {
	b := make([]byte, 0, 3*len(xs))
	for _, x := range xs {
		b = strconv.AppendInt(b, int64(x), 10)
		b = append(b, ',')
	}
	return string(b)
}

func timeKey(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(storeTime(t).UnixMilli(), 10)
}

// encodePageToken returns an opaque token: version, filter fingerprint,
// create_time in Unix milliseconds, the id, and a CRC-32 of all that, so a
// truncated or altered token is refused rather than read as another cursor;
// base64url.
func encodePageToken(c pageCursor, fp [8]byte) string {
	b := make([]byte, 0, 1+8+8+len(c.id)+4)
	b = append(b, pageTokenVersion)
	b = append(b, fp[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(c.createTime.UnixMilli()))
	b = append(b, c.id...)
	b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	return base64.RawURLEncoding.EncodeToString(b)
}

var (
	errMalformedToken = errors.New("malformed: pass the next_page_token of a previous response unchanged")
	errOtherQuery     = errors.New("belongs to a listing with other filters: keep the filters of the first page, or start again without a token")
)

// decodePageToken reads a token made by encodePageToken for the same filters.
func decodePageToken(s string, fp [8]byte) (pageCursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) < 1+8+8+1+4 || b[0] != pageTokenVersion {
		return pageCursor{}, errMalformedToken
	}
	b, sum := b[:len(b)-4], b[len(b)-4:]
	if crc32.ChecksumIEEE(b) != binary.BigEndian.Uint32(sum) {
		return pageCursor{}, errMalformedToken
	}
	id := string(b[17:])
	if !utf8.ValidString(id) {
		return pageCursor{}, errMalformedToken
	}
	if [8]byte(b[1:9]) != fp {
		return pageCursor{}, errOtherQuery
	}
	ms := int64(binary.BigEndian.Uint64(b[9:17]))
	return pageCursor{createTime: time.UnixMilli(ms).UTC(), id: id}, nil
}
