// Package bwe estimates the bandwidth towards one viewer from transport-wide
// congestion-control feedback (TWCC, RTCP PT=205 FMT=15) and chooses the
// simulcast layer that viewer should get.
//
// # Why not pion/interceptor's gcc
//
// pion's gcc send path allocates a map per packet per viewer (pion passes nil
// attributes and the interceptor makes one), and it runs a leaky-bucket pacer
// and goroutines per peer connection. Our fan-out path must allocate nothing
// per packet (see TestFanoutAllocatesNothing in sfu) and a server with
// thousands of viewers cannot afford a pacer and goroutines each. So the
// Estimator here has no goroutines of its own: Sent writes into a fixed ring
// under a mutex and allocates nothing; all the work happens in Feedback, on
// whichever goroutine reads the viewer's RTCP, every 50–100 ms.
//
// # How the Estimator estimates
//
// Every packet sent to the viewer carries a transport-wide sequence number;
// Sent records (sequence, size, send time) in a ring of Config.History
// entries. Each feedback packet says, per sequence number, whether it arrived
// and when (receiver clock). From the acknowledged packets Feedback derives,
// over a window of Config.Window (1 s) of feedback:
//
//   - Delivered: bytes received / receive-time span (what the link carried);
//   - Loss: lost / (lost + received);
//   - one-way delay per packet (arrival − departure: the two clocks differ by
//     an unknown offset, so only differences mean anything); the baseline is
//     the minimum over Config.BaselineWindow (10 s), and QueueDelay is the
//     average delay of the latest feedback above that baseline.
//
// The link is Congested when loss exceeds Config.LossThreshold (10 %) or when
// the queue delay has stayed above Config.DelayThreshold (70 ms) for the
// whole last Config.DelayTrend (200 ms) without draining. "Without draining"
// matters: after a decrease the queue takes a while to empty, and counting a
// draining queue as congestion would cut the rate again for a problem that is
// already being fixed.
//
// Rate control is AIMD anchored on what the receiver actually got:
//
//   - congested: Bitrate = min(Bitrate, 0.85 × Delivered), at most once per
//     Config.DecreaseInterval (200 ms, about one RTT);
//   - otherwise: Bitrate is at least Delivered (the link just carried that
//     without trouble) and grows by Config.IncreasePerSecond (6 %/s), but never
//     beyond 1.5 × Delivered. An app-limited sender (a viewer on a low layer)
//     learns nothing about rates it does not send, so growth stops there;
//     Bitrate is not pulled down to that cap either, because a sender that
//     sends less (a still scene) says nothing about the link getting worse.
//
// # Probing
//
// A viewer on a low layer sends too little to show that a higher one fits.
// StartProbe marks a window in which the SFU pads the viewer's stream up to a
// target rate. Every packet sent in the window (media and padding) belongs to
// the probe. Once feedback has reported all of them, the probe succeeds when
// the receiver got at least Config.ProbeMinRatio (90 %) of the rate sent, with
// loss ≤ Config.ProbeMaxLoss (5 %) and queue delay ≤ DelayThreshold; Bitrate
// then jumps to the delivered rate. A probe that shows loss or queue growth
// early fails at once, and Probing turns false so the SFU stops padding.
//
// # Choosing a layer
//
// Chooser turns estimates into a layer index for one viewer, with hysteresis
// (see Chooser for the rules and numbers). It is pure: the caller passes the
// time, so tests drive it with simulated clocks.
//
// # Limits
//
// A queue that stands (neither growing nor draining) for longer than the
// baseline window becomes the new baseline; a tail-drop bottleneck still shows
// as loss. The feedback window holds up to 64 feedback packets, so at more
// than 64 feedbacks per second the window is shorter than Config.Window.
package bwe
