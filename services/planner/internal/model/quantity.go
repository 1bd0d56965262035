package model

import (
	"errors"
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
)

// ErrQuantity is returned (wrapped) for a malformed Kubernetes quantity.
var ErrQuantity = errors.New("malformed quantity")

var quantitySuffixes = map[string]*big.Rat{
	"":   big.NewRat(1, 1),
	"n":  big.NewRat(1, 1_000_000_000),
	"u":  big.NewRat(1, 1_000_000),
	"m":  big.NewRat(1, 1000),
	"k":  big.NewRat(1000, 1),
	"M":  big.NewRat(1_000_000, 1),
	"G":  big.NewRat(1_000_000_000, 1),
	"T":  new(big.Rat).SetInt64(1_000_000_000_000),
	"P":  new(big.Rat).SetInt64(1_000_000_000_000_000),
	"E":  new(big.Rat).SetInt64(1_000_000_000_000_000_000),
	"Ki": new(big.Rat).SetInt64(1 << 10),
	"Mi": new(big.Rat).SetInt64(1 << 20),
	"Gi": new(big.Rat).SetInt64(1 << 30),
	"Ti": new(big.Rat).SetInt64(1 << 40),
	"Pi": new(big.Rat).SetInt64(1 << 50),
	"Ei": new(big.Rat).SetInt64(1 << 60),
}

// ParseQuantity parses a Kubernetes quantity ("100m", "1.5Gi", "2e3") and
// returns it in the base unit of the named resource: millicores for "cpu",
// whole units (bytes, counts) otherwise. Fractions are rounded up, as
// Kubernetes does.
func ParseQuantity(resource, s string) (int64, error) {
	r, err := parseRat(s)
	if err != nil {
		return 0, err
	}
	if resource == ResourceCPU {
		r.Mul(r, big.NewRat(1000, 1))
	}
	return ceilInt64(r, s)
}

func parseRat(s string) (*big.Rat, error) {
	t := strings.TrimSpace(s)
	if t == "" {
		return nil, fmt.Errorf("%q: %w", s, ErrQuantity)
	}
	// Split the number from its suffix: the number is [+-]digits[.digits]
	// and optionally an exponent e/E[+-]digits.
	i := 0
	if t[0] == '+' || t[0] == '-' {
		i++
	}
	digits := 0
	for i < len(t) && (t[i] >= '0' && t[i] <= '9' || t[i] == '.') {
		if t[i] != '.' {
			digits++
		}
		i++
	}
	if digits == 0 {
		return nil, fmt.Errorf("%q: %w", s, ErrQuantity)
	}
	num, suffix := t[:i], t[i:]
	scale := new(big.Rat).SetInt64(1)
	if len(suffix) > 1 && (suffix[0] == 'e' || suffix[0] == 'E') {
		exp, err := strconv.Atoi(suffix[1:])
		if err != nil || exp > 30 || exp < -30 {
			return nil, fmt.Errorf("%q: %w", s, ErrQuantity)
		}
		ten := new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(abs(exp))), nil)
		if exp >= 0 {
			scale.SetInt(ten)
		} else {
			scale.SetFrac(big.NewInt(1), ten)
		}
	} else {
		f, ok := quantitySuffixes[suffix]
		if !ok {
			return nil, fmt.Errorf("%q: unknown suffix %q: %w", s, suffix, ErrQuantity)
		}
		scale = f
	}
	r, ok := new(big.Rat).SetString(num)
	if !ok {
		return nil, fmt.Errorf("%q: %w", s, ErrQuantity)
	}
	return r.Mul(r, scale), nil
}

func ceilInt64(r *big.Rat, s string) (int64, error) {
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() > 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return 0, fmt.Errorf("%q: out of range: %w", s, ErrQuantity)
	}
	return q.Int64(), nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// ParsePercent parses "5%" into 5. It reports false when s is not a
// percentage.
func ParsePercent(s string) (float64, bool, error) {
	t := strings.TrimSpace(s)
	if !strings.HasSuffix(t, "%") {
		return 0, false, nil
	}
	p, err := strconv.ParseFloat(strings.TrimSuffix(t, "%"), 64)
	if err != nil || p < 0 || p > 100 || math.IsNaN(p) {
		return 0, true, fmt.Errorf("%q: %w", s, ErrQuantity)
	}
	return p, true, nil
}
