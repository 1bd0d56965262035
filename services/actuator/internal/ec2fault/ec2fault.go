// Package ec2fault injects EC2 behaviour that moto_server cannot produce —
// throttling, 5xx answers, timeouts before and after the request reached
// EC2, capacity errors on some offerings, and a fleet that launches fewer
// instances than asked — into a real aws-sdk-go-v2 client, through the
// middleware stack (aws.Config.APIOptions). Tests use it to show the
// actuator's handling of each fault end to end.
package ec2fault

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ec2"
	ec2types "github.com/aws/aws-sdk-go-v2/service/ec2/types"
	"github.com/aws/smithy-go/middleware"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Fault is what happens to one attempt of an operation at the transport.
type Fault int

// Faults at the transport, in the SDK's own shapes so its retryer and
// deserializers see what they would see from EC2.
const (
	// Throttle answers HTTP 503 RequestLimitExceeded without reaching EC2.
	Throttle Fault = iota + 1
	// ServerError answers HTTP 500 InternalError without reaching EC2.
	ServerError
	// Timeout fails the attempt with a network timeout before it reaches EC2.
	Timeout
	// LostResponse lets the attempt reach EC2 (it takes effect) and then
	// fails it with a network timeout: the caller cannot tell it happened.
	LostResponse
	// EmptyFleet answers a CreateFleet with no instance and no error, as an
	// instant fleet that launched fewer instances than asked.
	EmptyFleet
)

func (f Fault) String() string {
	switch f {
	case Throttle:
		return "throttle"
	case ServerError:
		return "server-error"
	case Timeout:
		return "timeout"
	case LostResponse:
		return "lost-response"
	case EmptyFleet:
		return "empty-fleet"
	}
	return fmt.Sprintf("fault(%d)", int(f))
}

// Injector holds the faults to inject and counts what it saw. It is safe
// for concurrent use; the zero value injects nothing.
type Injector struct {
	mu        sync.Mutex
	scripted  map[string][]Fault // operation → faults of its next attempts
	always    map[string]Fault   // operation → fault of every attempt
	exhausted []exhaustion
	attempts  map[string]int
	reached   map[string]int
	injected  map[Fault]int
}

type exhaustion struct {
	code          string
	capacityType  string
	instanceTypes []string
}

// Next makes the next n attempts of operation (e.g. "CreateFleet") fail
// with f, after any faults already scripted.
func (i *Injector) Next(operation string, f Fault, n int) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.scripted == nil {
		i.scripted = map[string][]Fault{}
	}
	for range n {
		i.scripted[operation] = append(i.scripted[operation], f)
	}
}

// Always makes every attempt of operation fail with f until Clear.
func (i *Injector) Always(operation string, f Fault) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.always == nil {
		i.always = map[string]Fault{}
	}
	i.always[operation] = f
}

// Clear removes every scripted and permanent fault and all exhaustion.
func (i *Injector) Clear() {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.scripted, i.always, i.exhausted = nil, nil, nil
}

// Exhaust makes CreateFleet overrides of the instance types (all when none)
// of capacityType ("" for both) fail with the EC2 error code, as EC2 does:
// the fleet launches from the other overrides and lists an error for each
// exhausted one.
func (i *Injector) Exhaust(code, capacityType string, instanceTypes ...string) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.exhausted = append(i.exhausted, exhaustion{code: code, capacityType: capacityType, instanceTypes: instanceTypes})
}

// Attempts returns how many attempts of operation reached the transport.
func (i *Injector) Attempts(operation string) int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.attempts[operation]
}

// Reached returns how many attempts of operation reached EC2.
func (i *Injector) Reached(operation string) int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.reached[operation]
}

// Injected returns how many times f was injected.
func (i *Injector) Injected(f Fault) int {
	i.mu.Lock()
	defer i.mu.Unlock()
	return i.injected[f]
}

// Option installs the injector on a client's middleware stack; pass it in
// aws.Config.APIOptions or a client's Options.APIOptions.
func (i *Injector) Option(stack *middleware.Stack) error {
	if err := stack.Initialize.Add(middleware.InitializeMiddlewareFunc("ec2fault-capacity", i.capacity), middleware.Before); err != nil {
		return fmt.Errorf("add capacity fault middleware: %w", err)
	}
	// Innermost in the deserialize step: below the retryer and the
	// operation's deserializer, in place of the HTTP round trip.
	if err := stack.Deserialize.Add(middleware.DeserializeMiddlewareFunc("ec2fault-transport", i.transport), middleware.After); err != nil {
		return fmt.Errorf("add transport fault middleware: %w", err)
	}
	return nil
}

func (i *Injector) next(operation string) Fault {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.attempts == nil {
		i.attempts, i.reached, i.injected = map[string]int{}, map[string]int{}, map[Fault]int{}
	}
	i.attempts[operation]++
	f := i.always[operation]
	if q := i.scripted[operation]; len(q) > 0 {
		f, i.scripted[operation] = q[0], q[1:]
	}
	if f != 0 {
		i.injected[f]++
	}
	if f == 0 || f == LostResponse {
		i.reached[operation]++
	}
	return f
}

func (i *Injector) transport(ctx context.Context, in middleware.DeserializeInput, next middleware.DeserializeHandler) (
	middleware.DeserializeOutput, middleware.Metadata, error) {
	op := middleware.GetOperationName(ctx)
	f := i.next(op)
	switch f {
	case Throttle:
		return errorResponse(http.StatusServiceUnavailable, "RequestLimitExceeded", "Request limit exceeded."), middleware.Metadata{}, nil
	case ServerError:
		return errorResponse(http.StatusInternalServerError, "InternalError", "An internal error has occurred."), middleware.Metadata{}, nil
	case Timeout:
		return middleware.DeserializeOutput{}, middleware.Metadata{}, timeoutError(in)
	case LostResponse:
		out, _, err := next.HandleDeserialize(ctx, in)
		if err != nil {
			return out, middleware.Metadata{}, err
		}
		if r, ok := out.RawResponse.(*smithyhttp.Response); ok && r.Body != nil {
			_, _ = io.Copy(io.Discard, r.Body)
			_ = r.Body.Close()
		}
		return middleware.DeserializeOutput{}, middleware.Metadata{}, timeoutError(in)
	case EmptyFleet:
		if op == "CreateFleet" {
			body := `<?xml version="1.0" encoding="UTF-8"?>
<CreateFleetResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/"><requestId>ec2fault</requestId><fleetId>fleet-ec2fault</fleetId><errorSet/><fleetInstanceSet/></CreateFleetResponse>`
			return response(http.StatusOK, body), middleware.Metadata{}, nil
		}
	}
	return next.HandleDeserialize(ctx, in)
}

// capacity removes the exhausted overrides from a CreateFleet, lets EC2
// launch from the rest (if any) and adds an error for each removed one.
func (i *Injector) capacity(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (
	middleware.InitializeOutput, middleware.Metadata, error) {
	fleet, ok := in.Parameters.(*ec2.CreateFleetInput)
	if !ok || fleet.TargetCapacitySpecification == nil {
		return next.HandleInitialize(ctx, in)
	}
	ct := string(fleet.TargetCapacitySpecification.DefaultTargetCapacityType)
	i.mu.Lock()
	exhausted := slices.Clone(i.exhausted)
	i.mu.Unlock()
	if len(exhausted) == 0 {
		return next.HandleInitialize(ctx, in)
	}
	trimmed := *fleet
	trimmed.LaunchTemplateConfigs = nil
	var errs []ec2types.CreateFleetError
	left := 0
	for _, c := range fleet.LaunchTemplateConfigs {
		kept := c
		kept.Overrides = nil
		for _, o := range c.Overrides {
			code := exhaustedCode(exhausted, ct, string(o.InstanceType))
			if code == "" {
				kept.Overrides = append(kept.Overrides, o)
				continue
			}
			errs = append(errs, ec2types.CreateFleetError{
				ErrorCode:    aws.String(code),
				ErrorMessage: aws.String("We currently do not have sufficient " + string(o.InstanceType) + " capacity in the Availability Zone you requested."),
				Lifecycle:    ec2types.InstanceLifecycle(ct),
				LaunchTemplateAndOverrides: &ec2types.LaunchTemplateAndOverridesResponse{
					LaunchTemplateSpecification: &ec2types.FleetLaunchTemplateSpecification{LaunchTemplateName: launchTemplateName(c)},
					Overrides:                   &ec2types.FleetLaunchTemplateOverrides{InstanceType: o.InstanceType, SubnetId: o.SubnetId},
				},
			})
		}
		if len(kept.Overrides) > 0 {
			trimmed.LaunchTemplateConfigs = append(trimmed.LaunchTemplateConfigs, kept)
			left += len(kept.Overrides)
		}
	}
	if len(errs) == 0 {
		return next.HandleInitialize(ctx, in)
	}
	if left == 0 {
		i.mu.Lock()
		if i.attempts == nil {
			i.attempts, i.reached, i.injected = map[string]int{}, map[string]int{}, map[Fault]int{}
		}
		i.attempts["CreateFleet"]++
		i.mu.Unlock()
		return middleware.InitializeOutput{Result: &ec2.CreateFleetOutput{FleetId: aws.String("fleet-ec2fault"), Errors: errs}}, middleware.Metadata{}, nil
	}
	in.Parameters = &trimmed
	out, md, err := next.HandleInitialize(ctx, in)
	if err != nil {
		return out, md, err
	}
	if res, ok := out.Result.(*ec2.CreateFleetOutput); ok {
		res.Errors = append(res.Errors, errs...)
	}
	return out, md, nil
}

func launchTemplateName(c ec2types.FleetLaunchTemplateConfigRequest) *string {
	if c.LaunchTemplateSpecification == nil {
		return nil
	}
	return c.LaunchTemplateSpecification.LaunchTemplateName
}

func exhaustedCode(exhausted []exhaustion, capacityType, instanceType string) string {
	for _, e := range exhausted {
		if e.capacityType != "" && e.capacityType != capacityType {
			continue
		}
		if len(e.instanceTypes) == 0 || slices.Contains(e.instanceTypes, instanceType) {
			return e.code
		}
	}
	return ""
}

// requests numbers the injected answers: like EC2's, each carries its own
// request id.
var requests atomic.Int64

func errorResponse(status int, code, message string) middleware.DeserializeOutput {
	id := fmt.Sprintf("ec2fault-%08d", requests.Add(1))
	body := `<?xml version="1.0" encoding="UTF-8"?>
<Response><Errors><Error><Code>` + code + `</Code><Message>` + message + `</Message></Error></Errors><RequestID>` + id + `</RequestID></Response>`
	return response(status, body)
}

func response(status int, body string) middleware.DeserializeOutput {
	h := http.Header{}
	h.Set("Content-Type", "text/xml;charset=UTF-8")
	return middleware.DeserializeOutput{RawResponse: &smithyhttp.Response{Response: &http.Response{
		StatusCode:    status,
		Status:        fmt.Sprintf("%d %s", status, http.StatusText(status)),
		Header:        h,
		Body:          io.NopCloser(strings.NewReader(body)),
		ContentLength: int64(len(body)),
	}}}
}

// netTimeout is a network timeout as net/http reports one.
type netTimeout struct{}

func (netTimeout) Error() string   { return "i/o timeout" }
func (netTimeout) Timeout() bool   { return true }
func (netTimeout) Temporary() bool { return true }

// ErrTimeout is the cause of every injected timeout.
var ErrTimeout error = netTimeout{}

func timeoutError(in middleware.DeserializeInput) error {
	u := "https://ec2.amazonaws.com/"
	if r, ok := in.Request.(*smithyhttp.Request); ok && r.URL != nil {
		u = r.URL.String()
	}
	return &smithyhttp.RequestSendError{Err: &url.Error{Op: "Post", URL: u, Err: ErrTimeout}}
}

// IsTimeout reports whether err came from an injected timeout.
func IsTimeout(err error) bool { return errors.Is(err, ErrTimeout) }
