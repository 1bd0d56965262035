package catalog

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseName(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		want   Name
		wantOK bool
	}{
		{"m5.large", Name{Family: "m5", Size: "large", Category: "m", Generation: 5}, true},
		{"c7g.xlarge", Name{Family: "c7g", Size: "xlarge", Category: "c", Generation: 7}, true},
		{"t3.medium", Name{Family: "t3", Size: "medium", Category: "t", Generation: 3}, true},
		{"inf2.48xlarge", Name{Family: "inf2", Size: "48xlarge", Category: "inf", Generation: 2}, true},
		{"trn1n.32xlarge", Name{Family: "trn1n", Size: "32xlarge", Category: "trn", Generation: 1}, true},
		{"hpc7g.16xlarge", Name{Family: "hpc7g", Size: "16xlarge", Category: "hpc", Generation: 7}, true},
		{"x2iedn.xlarge", Name{Family: "x2iedn", Size: "xlarge", Category: "x", Generation: 2}, true},
		{"p5en.48xlarge", Name{Family: "p5en", Size: "48xlarge", Category: "p", Generation: 5}, true},
		{"c8gb.metal-48xl", Name{Family: "c8gb", Size: "metal-48xl", Category: "c", Generation: 8}, true},
		{"m8i-flex.2xlarge", Name{Family: "m8i-flex", Size: "2xlarge", Category: "m", Generation: 8, Flex: true}, true},
		{"u-6tb1.112xlarge", Name{Family: "u-6tb1", Size: "112xlarge", Category: "u", Generation: 1}, true},
		{"u7i-12tb.224xlarge", Name{Family: "u7i-12tb", Size: "224xlarge", Category: "u", Generation: 7}, true},
		{"mac-m4.metal", Name{Family: "mac-m4", Size: "metal"}, false},
		{"M5.large", Name{Family: "M5", Size: "large"}, false},
		{"m.large", Name{Family: "m", Size: "large"}, false},
		{"m0.large", Name{Family: "m0", Size: "large"}, false},
		{"m99999999999999999999.large", Name{Family: "m99999999999999999999", Size: "large"}, false},
		{"small", Name{}, false},
		{"", Name{}, false},
		{"m5.", Name{}, false},
		{".large", Name{}, false},
		{"a.b.c", Name{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, ok := ParseName(tt.name)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseName(%q) mismatch (-want +got):\n%s", tt.name, diff)
			}
			if ok != tt.wantOK {
				t.Errorf("ParseName(%q) ok = %v, want %v", tt.name, ok, tt.wantOK)
			}
		})
	}
}

// Every instance type Kubernetes can run (all but the Mac types) must parse
// fully, or its NodePool requirements on category and generation would
// silently never match.
func TestParseNameEmbeddedTypes(t *testing.T) {
	t.Parallel()
	f, err := loadFacts()
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range f.specs {
		if s.arch == "" {
			continue
		}
		if _, ok := ParseName(name); !ok {
			t.Errorf("ParseName(%q) did not find family, size, category and generation", name)
		}
	}
}
