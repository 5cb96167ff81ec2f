package filter

import (
	"math/big"
	"testing"
)

func TestDecimalCmp(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{
		{"0", "-0", 0},
		{"0", "0.000e5", 0},
		{"1", "1.0", 0},
		{"1e2", "100", 0},
		{"100", "1E+2", 0},
		{"0.1", "1e-1", 0},
		{"0.1", "0.01", 1},
		{"0.001", "0.01", -1},
		{"123.456", "123.4561", -1},
		{"100.5", "100.05", 1},
		{"10", "9.99999999999999999999", 1},
		{"12345678901234567890", "12345678901234567891", -1},
		{"-12345678901234567890", "-12345678901234567891", 1},
		{"-1", "1", -1},
		{"-2", "-1", -1},
		{"-0.5", "0", -1},
		{"0", "-0.5", 1},
		{"0", "0.5", -1},
		{"1e400", "1e399", 1},
		{"-1e-400", "0", -1},
		{"1e-400", "1e-401", 1},
		{"1e999999999999999999999", "1e999999999999999999999", 0},
	}
	for _, tc := range tests {
		a, ok1 := parseDecimal(tc.a)
		b, ok2 := parseDecimal(tc.b)
		if !ok1 || !ok2 {
			t.Fatalf("parseDecimal(%q), parseDecimal(%q): ok = %v, %v", tc.a, tc.b, ok1, ok2)
		}
		if got := a.cmp(b); got != tc.want {
			t.Errorf("cmp(%s, %s) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
		if got := b.cmp(a); got != -tc.want {
			t.Errorf("cmp(%s, %s) = %d, want %d", tc.b, tc.a, got, -tc.want)
		}
	}
}

func TestParseDecimalRejects(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "-", "01", "-01", "1.", ".5", "1e", "1e+", "+1", "NaN", "Infinity", "1 ", " 1", "0x10", "1_000", "1.2.3", "--1", "1e5.5"} {
		if _, ok := parseDecimal(s); ok {
			t.Errorf("parseDecimal(%q) ok, want rejected", s)
		}
	}
}

// FuzzDecimalCmp compares parseDecimal and cmp with math/big on numbers
// whose exponents big.Rat handles quickly.
func FuzzDecimalCmp(f *testing.F) {
	for _, s := range [][2]string{{"0", "-0"}, {"1.5", "15e-1"}, {"12345678901234567890", "12345678901234567891"}, {"-0.001", "1e-3"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		da, oka := parseDecimal(a)
		db, okb := parseDecimal(b)
		ra, okra := ratOf(a)
		rb, okrb := ratOf(b)
		if oka && okra != oka || okb && okrb != okb {
			t.Skip() // exponent too large for big.Rat to take quickly
		}
		if !oka || !okb {
			return
		}
		if got, want := da.cmp(db), ra.Cmp(rb); got != want {
			t.Errorf("cmp(%q, %q) = %d, big.Rat says %d", a, b, got, want)
		}
	})
}

// ratOf parses s with math/big when its exponent is small.
func ratOf(s string) (*big.Rat, bool) {
	if len(s) > 200 {
		return nil, false
	}
	for i := range len(s) {
		if (s[i] == 'e' || s[i] == 'E') && len(s)-i > 5 {
			return nil, false
		}
	}
	return new(big.Rat).SetString(s)
}
