package filter

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// decimal is a finite number held as views into its decimal text, so that
// comparing json.Number values is exact at any size and allocates nothing.
// Its value is ±0.D × 10^exp, where the significant digits D are hi
// followed by lo, without leading or trailing zeros; zero has no digits
// and is never negative.
type decimal struct {
	neg    bool
	hi, lo string
	exp    int64
}

// maxExponent caps the exponent read from the text. Numbers whose
// exponents both pass it may compare equal when they are not; no payload
// has a reason to carry 1e1000000000000000.
const maxExponent = 1e15

// parseDecimal reads s as a JSON number: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func parseDecimal(s string) (decimal, bool) {
	rest, neg := strings.CutPrefix(s, "-")
	intPart, rest, ok := cutInteger(rest)
	if !ok {
		return decimal{}, false
	}
	frac, rest, ok := cutFraction(rest)
	if !ok {
		return decimal{}, false
	}
	e, rest, ok := cutExponent(rest)
	if !ok || rest != "" {
		return decimal{}, false
	}
	return newDecimal(neg, intPart, frac, e), true
}

// cutInteger cuts the integer part, 0|[1-9][0-9]*, from the front of s.
// ok is false when s does not start with a digit.
func cutInteger(s string) (digits, rest string, ok bool) {
	n := 1
	// A leading zero is the whole integer part: what follows it must be a
	// fraction or an exponent, or the text is not a number.
	if s == "" || s[0] != '0' {
		n = leadingDigits(s)
	}
	if n == 0 {
		return "", s, false
	}
	return s[:n], s[n:], true
}

// cutFraction cuts the fraction, \.[0-9]+, from the front of s and returns
// its digits. A missing fraction is ok; a point without digits is not.
func cutFraction(s string) (digits, rest string, ok bool) {
	after, found := strings.CutPrefix(s, ".")
	if !found {
		return "", s, true
	}
	n := leadingDigits(after)
	if n == 0 {
		return "", s, false
	}
	return after[:n], after[n:], true
}

// cutExponent cuts the exponent, [eE][+-]?[0-9]+, from the front of s and
// returns its value, held at maxExponent in magnitude. A missing exponent
// is ok and 0; a marker without digits is not.
func cutExponent(s string) (e int64, rest string, ok bool) {
	if s == "" || (s[0] != 'e' && s[0] != 'E') {
		return 0, s, true
	}
	s = s[1:]
	neg := false
	if s != "" && (s[0] == '+' || s[0] == '-') {
		neg = s[0] == '-'
		s = s[1:]
	}
	n := leadingDigits(s)
	if n == 0 {
		return 0, s, false
	}
	for i := range n {
		if e < maxExponent {
			e = e*10 + int64(s[i]-'0')
		}
	}
	if neg {
		e = -e
	}
	return e, s[n:], true
}

// leadingDigits counts the decimal digits at the front of s.
func leadingDigits(s string) int {
	n := 0
	for n < len(s) && isDigit(s[n]) {
		n++
	}
	return n
}

// newDecimal is the number whose integer part and fraction have the
// digits intPart and frac, times 10^e.
func newDecimal(neg bool, intPart, frac string, e int64) decimal {
	// The digits intPart+frac, times 10^(e-len(frac)), are 0.D × 10^exp
	// with exp = len(D) + e - len(frac) once leading zeros are gone.
	hi, lo := strings.TrimLeft(intPart, "0"), frac
	if hi == "" {
		lo = strings.TrimLeft(frac, "0")
	}
	exp := int64(len(hi)+len(lo)) + e - int64(len(frac))
	lo = strings.TrimRight(lo, "0")
	if lo == "" {
		hi = strings.TrimRight(hi, "0")
	}
	if hi == "" && lo == "" {
		return decimal{}
	}
	return decimal{neg: neg, hi: hi, lo: lo, exp: exp}
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

func (d decimal) isZero() bool { return d.hi == "" && d.lo == "" }

// cmp returns -1, 0 or +1 as d is less than, equal to or greater than x.
func (d decimal) cmp(x decimal) int {
	dz, xz := d.isZero(), x.isZero()
	switch {
	case dz && xz:
		return 0
	case dz:
		return sign(x.neg)
	case xz:
		return -sign(d.neg)
	case d.neg != x.neg:
		return -sign(d.neg)
	}
	if d.neg {
		return -d.cmpAbs(x)
	}
	return d.cmpAbs(x)
}

// sign is +1 for a negative and -1 otherwise: how zero compares with a
// number of that sign.
func sign(neg bool) int {
	if neg {
		return 1
	}
	return -1
}

// cmpAbs compares the magnitudes of two non-zero decimals.
func (d decimal) cmpAbs(x decimal) int {
	if d.exp != x.exp {
		if d.exp < x.exp {
			return -1
		}
		return 1
	}
	n, m := len(d.hi)+len(d.lo), len(x.hi)+len(x.lo)
	for i := 0; i < n && i < m; i++ {
		a, b := d.digit(i), x.digit(i)
		if a != b {
			if a < b {
				return -1
			}
			return 1
		}
	}
	switch {
	case n < m:
		return -1
	case n > m:
		return 1
	}
	return 0
}

func (d decimal) digit(i int) byte {
	if i < len(d.hi) {
		return d.hi[i]
	}
	return d.lo[i-len(d.hi)]
}

// toDecimal reads v as a number: a json.Number, a finite float, or a Go
// integer. ok is false for anything else, an invalid json.Number included.
func toDecimal(v any) (d decimal, ok bool) {
	switch x := v.(type) {
	case json.Number:
		return parseDecimal(string(x))
	case float64:
		return floatDecimal(x, 64)
	case float32:
		return floatDecimal(float64(x), 32)
	case int:
		return parseDecimal(strconv.FormatInt(int64(x), 10))
	case int8:
		return parseDecimal(strconv.FormatInt(int64(x), 10))
	case int16:
		return parseDecimal(strconv.FormatInt(int64(x), 10))
	case int32:
		return parseDecimal(strconv.FormatInt(int64(x), 10))
	case int64:
		return parseDecimal(strconv.FormatInt(x, 10))
	case uint:
		return parseDecimal(strconv.FormatUint(uint64(x), 10))
	case uint8:
		return parseDecimal(strconv.FormatUint(uint64(x), 10))
	case uint16:
		return parseDecimal(strconv.FormatUint(uint64(x), 10))
	case uint32:
		return parseDecimal(strconv.FormatUint(uint64(x), 10))
	case uint64:
		return parseDecimal(strconv.FormatUint(x, 10))
	}
	return decimal{}, false
}

// floatDecimal is f as the shortest decimal that converts back to it: the
// text it was most likely decoded from.
func floatDecimal(f float64, bits int) (decimal, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return decimal{}, false
	}
	return parseDecimal(strconv.FormatFloat(f, 'g', -1, bits))
}

// isNumber reports whether v is of one of the number types toDecimal reads.
func isNumber(v any) bool {
	switch v.(type) {
	case json.Number, float64, float32, int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64:
		return true
	}
	return false
}
