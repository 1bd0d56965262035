package catalog

import (
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestZonesAgreeWithMoto checks the embedded us-east-1 zones against what
// moto_server answers the actuator: the one at AWS_ENDPOINT_URL, else one
// the test starts on a free port.
//
// This package may not import the AWS SDK, so it speaks EC2's query protocol
// directly; moto does not check signatures, only reads the region from the
// credential scope.
func TestZonesAgreeWithMoto(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	endpoint := os.Getenv("AWS_ENDPOINT_URL")
	if endpoint == "" {
		endpoint = startMoto(ctx, t)
	}

	var zones struct {
		Items []struct {
			Name string `xml:"zoneName"`
			ID   string `xml:"zoneId"`
		} `xml:"availabilityZoneInfo>item"`
	}
	if err := ec2Query(ctx, endpoint, url.Values{"Action": {"DescribeAvailabilityZones"}}, &zones); err != nil {
		t.Fatal(err)
	}
	motoZoneID := map[string]string{}
	for _, z := range zones.Items {
		motoZoneID[z.Name] = z.ID
	}
	if len(motoZoneID) == 0 {
		t.Fatal("moto returned no availability zones")
	}

	motoOffered := map[string][]string{}
	params := url.Values{"Action": {"DescribeInstanceTypeOfferings"}, "LocationType": {"availability-zone"}}
	for {
		var page struct {
			Items []struct {
				Type     string `xml:"instanceType"`
				Location string `xml:"location"`
			} `xml:"instanceTypeOfferingSet>item"`
			NextToken string `xml:"nextToken"`
		}
		if err := ec2Query(ctx, endpoint, params, &page); err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Items {
			motoOffered[o.Type] = append(motoOffered[o.Type], o.Location)
		}
		if page.NextToken == "" {
			break
		}
		params.Set("NextToken", page.NextToken)
	}

	types, err := Region("us-east-1")
	if err != nil {
		t.Fatal(err)
	}
	var exact, superset, notInMoto int
	for _, it := range types {
		ours := map[string]bool{}
		for _, o := range it.GetOfferings() {
			ours[o.GetZone()] = true
			id, ok := motoZoneID[o.GetZone()]
			if !ok {
				t.Errorf("%s: zone %s is not one of moto's zones", it.GetName(), o.GetZone())
			} else if o.GetZoneId() != id {
				t.Errorf("%s: zone %s has ID %q, moto says %q", it.GetName(), o.GetZone(), o.GetZoneId(), id)
			}
		}
		theirs, ok := motoOffered[it.GetName()]
		if !ok {
			notInMoto++
			continue
		}
		// Every zone moto offers the type in must be one we list: a zone
		// named differently would make the actuator drop the offering.
		for _, z := range theirs {
			if !ours[z] {
				t.Errorf("%s: moto offers it in %s, the catalogue does not (catalogue zones %v)", it.GetName(), z, keys(ours))
			}
		}
		if len(theirs) == len(ours) {
			exact++
		} else {
			superset++
		}
	}
	t.Logf("%d types: %d with moto's zones exactly, %d with more zones (newer data), %d unknown to this moto",
		len(types), exact, superset, notInMoto)
	if exact < len(types)*8/10 {
		t.Errorf("only %d of %d types have exactly moto's zones", exact, len(types))
	}
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// ec2Query makes one EC2 query-protocol call in us-east-1 and decodes the
// XML answer into out.
func ec2Query(ctx context.Context, endpoint string, params url.Values, out any) error {
	params.Set("Version", "2016-11-15")
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(params.Encode()))
	if err != nil {
		return fmt.Errorf("%s: %w", params.Get("Action"), err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/ec2/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", params.Get("Action"), err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("%s: %w", params.Get("Action"), err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %.300s", params.Get("Action"), resp.Status, body)
	}
	if err := xml.Unmarshal(body, out); err != nil {
		return fmt.Errorf("%s: %w", params.Get("Action"), err)
	}
	return nil
}

// startMoto runs moto_server on a free loopback port until the test ends and
// returns its endpoint.
func startMoto(ctx context.Context, t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("moto_server")
	if err != nil {
		t.Fatalf("moto_server not on PATH (pip install 'moto[server]'): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(path, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// moto_server ignores SIGTERM.
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	endpoint := fmt.Sprintf("http://127.0.0.1:%d", port)
	for ctx.Err() == nil {
		if resp, err := http.Get(endpoint + "/moto-api/"); err == nil {
			resp.Body.Close()
			return endpoint
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("moto_server at %s did not answer: %v", endpoint, ctx.Err())
	return ""
}
