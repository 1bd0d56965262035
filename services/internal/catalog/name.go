package catalog

import (
	"strconv"
	"strings"
)

// Name is an EC2 instance type name split into the parts Karpenter turns
// into labels. "m8i-flex.2xlarge" is family "m8i-flex", size "2xlarge",
// category "m", generation 8, flex; "u-6tb1.112xlarge" is family "u-6tb1",
// category "u", generation 1.
type Name struct {
	// Family is the part before the dot ("m5", "c7gn", "u7i-12tb").
	Family string
	// Size is the part after the dot ("large", "24xlarge", "metal-48xl").
	Size string
	// Category is the leading letters of the family ("m", "inf", "hpc");
	// empty, like Generation, when the family has no generation number.
	Category string
	// Generation is the number after the category (and after a "-<N>tb"
	// memory marker): 5 for m5, 1 for u-6tb1; 0 when the name has none.
	Generation int
	// Flex is true for the "-flex" families (m7i-flex).
	Flex bool
}

// ParseName splits an instance type name. Parts the name does not have are
// left empty; ok reports whether family, size, category and generation were
// all found, as they are for every EC2 instance type Kubernetes can run on
// (the Mac types, "mac-m4.metal", have no generation).
func ParseName(name string) (n Name, ok bool) {
	family, size, dotted := strings.Cut(name, ".")
	if dotted && family != "" && size != "" && !strings.Contains(size, ".") {
		n.Family, n.Size = family, size
		n.Flex = strings.Contains(family, "-flex")
		n.Category, n.Generation = categoryGeneration(family)
	}
	return n, n.Family != "" && n.Category != "" && n.Generation > 0
}

// categoryGeneration reads a family the way Karpenter's instance type scheme
// does: lowercase letters (the category), optionally "-<digits>tb", then
// digits (the generation).
func categoryGeneration(family string) (string, int) {
	i := 0
	for i < len(family) && family[i] >= 'a' && family[i] <= 'z' {
		i++
	}
	if i == 0 {
		return "", 0
	}
	category, rest := family[:i], family[i:]
	// "-6tb1": a high-memory family's size marker precedes the generation.
	if strings.HasPrefix(rest, "-") {
		j := 1
		for j < len(rest) && isDigit(rest[j]) {
			j++
		}
		if j > 1 && strings.HasPrefix(rest[j:], "tb") {
			rest = rest[j+2:]
		}
	}
	j := 0
	for j < len(rest) && isDigit(rest[j]) {
		j++
	}
	gen, err := strconv.Atoi(rest[:j])
	if j == 0 || err != nil || gen <= 0 {
		// No generation (or an absurd one): Karpenter's scheme does not
		// match, and it sets neither label.
		return "", 0
	}
	return category, gen
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }
