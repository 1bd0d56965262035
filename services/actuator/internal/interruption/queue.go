package interruption

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SQSAPI is exactly the part of the SQS API the poller calls.
type SQSAPI interface {
	GetQueueUrl(ctx context.Context, in *sqs.GetQueueUrlInput, opts ...func(*sqs.Options)) (*sqs.GetQueueUrlOutput, error)
	ReceiveMessage(ctx context.Context, in *sqs.ReceiveMessageInput, opts ...func(*sqs.Options)) (*sqs.ReceiveMessageOutput, error)
	DeleteMessage(ctx context.Context, in *sqs.DeleteMessageInput, opts ...func(*sqs.Options)) (*sqs.DeleteMessageOutput, error)
}

// Defaults of PollerOptions.
const (
	DefaultWait    = 20 * time.Second
	DefaultRefresh = 10 * time.Second
)

// PollerOptions configure a Poller.
type PollerOptions struct {
	// Queues returns the queues to read (names or URLs), asked again every
	// Refresh: the interruption queues of the node classes and the
	// actuator's default.
	Queues func() []string
	// Wait is the long-poll wait of one receive (at most 20s).
	Wait time.Duration
	// Refresh: how often Queues is asked again.
	Refresh time.Duration
	Logger  *slog.Logger
}

// Poller reads interruption queues and hands their notices to a Handler.
type Poller struct {
	sqs     SQSAPI
	handler *Handler
	opts    PollerOptions
	log     *slog.Logger
}

// NewPoller returns a Poller; Run polls.
func NewPoller(api SQSAPI, handler *Handler, opts PollerOptions) *Poller {
	if opts.Wait <= 0 || opts.Wait > DefaultWait {
		opts.Wait = DefaultWait
	}
	if opts.Refresh <= 0 {
		opts.Refresh = DefaultRefresh
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Queues == nil {
		opts.Queues = func() []string { return nil }
	}
	return &Poller{sqs: api, handler: handler, opts: opts, log: opts.Logger}
}

// Run reads every queue Queues names, one goroutine per queue, starting
// and stopping them as the list changes, until ctx ends.
func (p *Poller) Run(ctx context.Context) error {
	running := map[string]context.CancelFunc{}
	var wg sync.WaitGroup
	defer func() {
		for _, cancel := range running {
			cancel()
		}
		wg.Wait()
	}()
	t := time.NewTicker(p.opts.Refresh)
	defer t.Stop()
	for {
		want := compact(p.opts.Queues())
		for q, cancel := range running {
			if !slices.Contains(want, q) {
				cancel()
				delete(running, q)
				p.log.InfoContext(ctx, "interruption_queue_dropped", "queue", q)
			}
		}
		for _, q := range want {
			if _, ok := running[q]; ok {
				continue
			}
			qctx, cancel := context.WithCancel(ctx)
			running[q] = cancel
			wg.Go(func() { p.poll(qctx, q) })
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// poll reads one queue until ctx ends.
func (p *Poller) poll(ctx context.Context, queue string) {
	url, backoff := "", time.Second
	sleep := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff):
			backoff = min(backoff*2, time.Minute)
			return true
		}
	}
	for ctx.Err() == nil {
		if url == "" {
			u, err := p.resolve(ctx, queue)
			if err != nil {
				if ctx.Err() == nil {
					p.log.WarnContext(ctx, "interruption_queue_unavailable", "queue", queue, "error", err.Error())
				}
				if !sleep() {
					return
				}
				continue
			}
			url = u
			p.log.InfoContext(ctx, "interruption_queue_polling", "queue", queue, "url", url)
		}
		n, err := p.Receive(ctx, url)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			p.log.WarnContext(ctx, "interruption_receive_failed", "queue", queue, "error", err.Error())
			if !sleep() {
				return
			}
			continue
		}
		if n > 0 {
			backoff = time.Second
		}
	}
}

func (p *Poller) resolve(ctx context.Context, queue string) (string, error) {
	if queueURL(queue) {
		return queue, nil
	}
	out, err := p.sqs.GetQueueUrl(ctx, &sqs.GetQueueUrlInput{QueueName: aws.String(queue)})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.QueueUrl), nil
}

// Receive reads one batch from a queue (waiting up to the long-poll time),
// handles it and deletes what was handled or cannot ever be; it returns how
// many messages it received.
func (p *Poller) Receive(ctx context.Context, url string) (int, error) {
	out, err := p.sqs.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{
		QueueUrl:            aws.String(url),
		MaxNumberOfMessages: 10,
		WaitTimeSeconds:     int32(p.opts.Wait / time.Second),
	})
	if err != nil {
		return 0, err
	}
	for _, m := range out.Messages {
		if !p.handle(ctx, m) {
			continue
		}
		if _, err := p.sqs.DeleteMessage(ctx, &sqs.DeleteMessageInput{QueueUrl: aws.String(url), ReceiptHandle: m.ReceiptHandle}); err != nil {
			p.log.WarnContext(ctx, "interruption_delete_failed", "message", aws.ToString(m.MessageId), "error", err.Error())
		}
	}
	return len(out.Messages), nil
}

// handle acts on one message; false leaves it on the queue to come back.
func (p *Poller) handle(ctx context.Context, m sqstypes.Message) bool {
	n, err := Parse(aws.ToString(m.Body))
	if errors.Is(err, ErrNotInterruption) {
		p.log.DebugContext(ctx, "interruption_message_ignored", "message", aws.ToString(m.MessageId), "why", err.Error())
		return true
	}
	if err != nil {
		// It will not parse any better next time.
		p.log.WarnContext(ctx, "interruption_message_malformed", "message", aws.ToString(m.MessageId), "error", err.Error())
		return true
	}
	if err := p.handler.Handle(ctx, n); err != nil {
		p.log.WarnContext(ctx, "interruption_handling_failed", "message", aws.ToString(m.MessageId), "error", err.Error())
		return false
	}
	return true
}

func compact(qs []string) []string {
	var out []string
	for _, q := range qs {
		if q != "" && !slices.Contains(out, q) {
			out = append(out, q)
		}
	}
	slices.Sort(out)
	return out
}
