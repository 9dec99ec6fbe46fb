/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * libvigil-agent: be a vigil agent from inside your own program
 * (docs/leases.md). Link with -lvigil-agent -lpthread (static:
 * build/libvigil-agent.a; shared: build/libvigil-agent.so).
 *
 * vigil_agent_start() runs a beat loop in a thread of its own. It sends a
 * signed beat (include/vigil/wire.h) every `interval_ms` from one UDP socket
 * and reads the monitor's acknowledgements on the same socket. When the
 * agent names a lease, the acknowledgements tell it who holds the lease,
 * under which fencing token and for how long; the library turns that into
 * one answer, vigil_agent_lease(): "may I act as the holder right now, and
 * with which token".
 *
 * SAFETY RULE. The agent holds the lease only while
 *   - the newest verified acknowledgement said holder == this agent,
 *     state HELD, with a token no lower than any token it has seen, and
 *   - now < deadline, where
 *       deadline = (this agent's own clock when it SENT the acknowledged beat)
 *                  + remaining_ms from that acknowledgement x (1 - drift bound).
 * An acknowledgement naming another holder, a higher token or a state other
 * than HELD ends the lease at once. The monitor never grants a lease again
 * before its own expiry (renewals only move it later), and the agent's send
 * time precedes the monitor's receive time, so as long as the two clocks'
 * rates differ by less than the drift bound, the agent stops acting before the
 * monitor can hand the lease to anyone else.
 *
 * What the rule cannot do: stop an action already under way when the
 * deadline passes (a process paused between its check and its write). That
 * is what the fencing token is for: present it with every write, and have the
 * protected resource refuse any token lower than the highest it has seen.
 *
 * SEVERAL MONITORS (docs/monitors.md). The agent may beat to a list of
 * monitors; each gets every beat and detects on its own. A grant counts from
 * the monitor that made it (the granter): answers from the others end the
 * holding only when they show a newer grant (a higher token), so a standby
 * monitor that holds no grant changes nothing. A lease is granted by one
 * monitor at a time: define it on one monitor only, or replicate it between
 * them (vigil run --lease-nats, docs/leases.md), never both unreplicated.
 *
 * ADAPTIVE CADENCE (docs/leases.md#adaptive-cadence). Every beat announces
 * the interval it promises: the next beat comes within it. With `adaptive`,
 * the interval lengthens as the queue depth (vigil_agent_set_queue_depth)
 * grows, within [interval_ms, max_interval_ms], with hysteresis so it cannot
 * oscillate; an acknowledgement's recommended interval (the monitor's storm
 * control) slows it further, within the same bounds. A longer interval is
 * announced by the beat due under the old one, so the monitor's deadline is
 * never missed during a change (include/vigil/cadence.h).
 *
 * Times are CLOCK_BOOTTIME nanoseconds (vigil_agent_now_ns()): monotonic and,
 * unlike CLOCK_MONOTONIC, still counting while the machine is suspended, so a
 * suspend can only make the agent stop earlier, never later.
 *
 * Thread safety: every function may be called from any thread. Callbacks run
 * on the agent's thread, without any library lock held; they may call
 * vigil_agent_lease() and vigil_agent_set_*(), but not vigil_agent_stop().
 */
#ifndef VIGIL_AGENT_H
#define VIGIL_AGENT_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && !defined(VIGIL_AGENT_API)
#define VIGIL_AGENT_API __attribute__((visibility("default")))
#elif !defined(VIGIL_AGENT_API)
#define VIGIL_AGENT_API
#endif

#define VIGIL_AGENT_DEFAULT_PORT 4747
#define VIGIL_AGENT_DEFAULT_INTERVAL_MS 1000
#define VIGIL_AGENT_DEFAULT_DRIFT_PPM 1000 /* 0.1 %: far above real quartz drift */
#define VIGIL_AGENT_MAX_MONITORS 8

/* Values of vigil_agent_set_status() (enum vigil_status on the wire). */
enum vigil_agent_status {
	VIGIL_AGENT_STATUS_OK = 0,
	VIGIL_AGENT_STATUS_DEGRADED = 1,
	VIGIL_AGENT_STATUS_DRAINING = 2, /* hands a held lease over at once */
	VIGIL_AGENT_STATUS_LEAVING = 3,  /* hands it over and stops being monitored */
};

/* What changed, for the callback. */
enum vigil_lease_change {
	VIGIL_LEASE_GAINED = 1, /* this agent became the holder (token in view) */
	VIGIL_LEASE_LOST = 2,   /* it stopped being the holder (reason in view) */
	VIGIL_LEASE_TOKEN = 3,  /* still the holder, under a new grant and token */
	VIGIL_CADENCE_CHANGED = 4, /* the interval the beats announce changed
				    * (view.interval_ms; adaptive cadence, storm
				    * control). Only agents whose interval can
				    * change (adaptive, max_interval_ms) see it */
};

/* Why the agent stopped being the holder. */
enum vigil_lease_loss {
	VIGIL_LOSS_NONE = 0,
	VIGIL_LOSS_DEADLINE = 1,     /* the safety rule's deadline passed without renewal */
	VIGIL_LOSS_OTHER_HOLDER = 2, /* an acknowledgement named another holder */
	VIGIL_LOSS_NEWER_TOKEN = 3,  /* an acknowledgement carried a higher token */
	VIGIL_LOSS_NOT_HELD = 4,     /* the monitor says expired, released or free */
	VIGIL_LOSS_RELEASED = 5,     /* this agent went DRAINING/LEAVING or stopped */
};

/* What the agent knows of its lease; see vigil_agent_lease(). */
struct vigil_lease_view {
	uint32_t lease_id;        /* the configured lease; 0: the agent names none */
	uint64_t now_ns;          /* the vigil_agent_now_ns() this view holds at */
	int holder;               /* 1: the holder at now_ns; 0: not */
	uint64_t token;           /* holder: the fencing token to present with
				   * every action. Otherwise the token of the
				   * grant this agent held last (0: never) */
	uint64_t deadline_ns;     /* holder: stop acting before this
				   * vigil_agent_now_ns(); 0 otherwise */
	enum vigil_lease_loss lost_reason; /* why the last holding ended */
	/* The newest verified acknowledgement, as the monitor saw the lease: */
	uint64_t monitor_holder;  /* agent id holding it, 0 = none */
	uint64_t monitor_token;   /* highest token in any verified acknowledgement */
	uint32_t monitor_state;   /* 0 free, 1 held, 2 expired, 3 released */
	uint32_t remaining_ms;    /* lease time left when the monitor answered */
	uint64_t last_ack_ns;     /* vigil_agent_now_ns() of its arrival, 0 = none yet */
	uint32_t recommend_interval_ms; /* the monitor's advice (0: none) */
	uint32_t interval_ms;     /* the interval the last beat announced: the next
				   * beat comes within it (before the first beat:
				   * the configured interval) */
	/* Counters since start. */
	uint64_t beats_sent;
	uint64_t acks_ok;         /* verified and applied */
	uint64_t acks_rejected;   /* failed verification, wrong agent, unknown seq */
	uint64_t acks_stale;      /* verified, but older than one already applied */
	uint64_t send_errors;     /* beats sendto(2) refused (no route, ...) */
	int send_errno;           /* the last such error */
	/* Adaptive cadence (appended in this order). */
	uint16_t queue_depth;     /* as reported in the beats */
	uint32_t cadence_level;   /* 0: interval_ms; each level doubles it */
	uint32_t cadence_changes; /* how often the announced interval changed */
	uint64_t next_beat_ns;    /* vigil_agent_now_ns() the next beat is due at */
	uint64_t beats_skipped;   /* scheduled beats the gate held back */
	/* Several monitors (appended). */
	uint32_t monitors;        /* how many the agent beats to */
	uint32_t lease_monitor;   /* the one the monitor_* fields above come from:
				   * the granter of the holding, else the one whose
				   * newest acknowledgement carried the highest token */
};

/* One monitor's own view (vigil_agent_monitor_view()), for an agent that
 * beats to several. */
struct vigil_monitor_view {
	uint64_t acks_ok;         /* its acknowledgements verified and applied */
	uint64_t last_ack_ns;     /* vigil_agent_now_ns() of the newest, 0 = none yet */
	uint64_t holder;          /* the lease as its newest acknowledgement saw it */
	uint64_t token;
	uint32_t state;           /* 0 free, 1 held, 2 expired, 3 released */
	uint32_t remaining_ms;
	uint32_t recommend_interval_ms;
	int send_errno;           /* the last error sending to it */
	uint64_t send_errors;     /* beats sendto(2) refused for this monitor */
};

struct vigil_agent;

typedef void (*vigil_agent_change_fn)(struct vigil_agent *agent, enum vigil_lease_change what,
				      const struct vigil_lease_view *view, void *arg);

/* Probe mode: called on the agent's thread ahead of each scheduled beat,
 * timeout_ms (80 % of the interval in force) before it is due, so that a
 * check taking up to timeout_ms still lets the beat go out on time. Return
 * nonzero to send the beat, 0 to hold it back (the monitor then sees a missed
 * beat: SUSPECT, then DEAD, exactly as if the service had died). It must
 * return within timeout_ms; the agent's thread does nothing else meanwhile. */
typedef int (*vigil_agent_gate_fn)(struct vigil_agent *agent, uint32_t timeout_ms, void *arg);

/* After each beat, on the agent's thread: its sequence, when it was due
 * (0: sent at once, e.g. on a status change) and when its send(2) started
 * and returned, all vigil_agent_now_ns(). Lets an agent prove when it beat
 * (an agent held off the CPU sends late; the monitor is then right to
 * report it). Keep it short: the next beat waits for it. */
typedef void (*vigil_agent_send_fn)(struct vigil_agent *agent, uint64_t seq, uint64_t due_ns,
				    uint64_t start_ns, uint64_t end_ns, void *arg);

/* One monitor of several (vigil_agent_config.monitors). */
struct vigil_agent_monitor {
	const char *address;       /* required: IPv4 or IPv6 */
	uint16_t port;             /* 0: the config's port (itself 0: 4747) */
	int has_key;               /* 1: this monitor's own key for the agent (each
				    * monitor its own key set); 0: the config's key */
	uint8_t key[16];
	uint8_t key_id;
};

struct vigil_agent_config {
	uint64_t agent_id;         /* required, 1..2^64-1 */
	const char *monitor;       /* the monitor's IPv4 or IPv6 address (required
				    * unless `monitors` lists several) */
	uint16_t port;             /* 0: 4747 */
	uint8_t key[16];           /* the agent's 128-bit key (vigil key gen) */
	int has_key;               /* 1: sign beats and require signed acks */
	uint8_t key_id;            /* 0 or 1: which of the agent's keys this is */
	uint32_t interval_ms;      /* beat interval; 0: 1000. Promised to the monitor.
				    * With `adaptive`: the shortest, used at a low
				    * queue depth */
	uint32_t max_interval_ms;  /* >interval_ms: the longest interval the agent
				    * may announce: it follows the monitor's
				    * recommended interval up to this (storm
				    * control) and, with `adaptive`, its queue
				    * depth. A holder never beats slower than a
				    * third of its lease. Keep it within the group's
				    * interval-max-ms (the monitor clamps to that) */
	uint32_t incarnation;      /* used if has_incarnation; otherwise the
				    * wall-clock seconds at start (rises on restart) */
	int has_incarnation;
	uint64_t first_seq;        /* 0: wall-clock microseconds at start, so a
				    * restart moves sequences forward */
	uint32_t lease_id;         /* lease to renew with every beat, 0 = none */
	uint32_t drift_ppm;        /* clock rate bound between agent and monitor, in
				    * parts per million; 0: 1000 */
	uint8_t status;            /* initial enum vigil_agent_status */
	uint16_t queue_depth;      /* initial backlog to report */
	uint64_t max_beats;        /* stop beating after this many (0: no limit) */
	int inherit_grant;         /* 0 (default): a grant this agent already holds
				    * when it starts (an earlier run's) is handed
				    * back with one DRAINING beat, so this process
				    * only ever acts under tokens granted during its
				    * own lifetime. 1: adopt it */
	int allow_unsigned_acks;   /* development only (monitor run with --no-auth):
				    * trust acknowledgements without a tag; anyone on
				    * the path could then forge a grant */
	vigil_agent_change_fn on_change; /* optional */
	void *arg;                 /* passed to on_change and gate */
	/* Adaptive cadence (include/vigil/cadence.h); appended in this order. */
	int adaptive;              /* 1: the queue depth moves the interval within
				    * [interval_ms, max_interval_ms] */
	uint16_t queue_high;       /* step up from level k at depth >= high x 2^k (0: 64) */
	uint16_t queue_low;        /* step down from level k at depth <= low x 2^(k-1)
				    * (0: queue_high / 4; must be below queue_high) */
	uint32_t dwell_ms;         /* least time between two steps (0: 4 x the
				    * current interval) */
	vigil_agent_gate_fn gate;  /* optional: beat only while it passes (probe mode) */
	vigil_agent_send_fn on_send; /* optional: told of every beat sent (appended) */
	/* Several monitors (appended; docs/monitors.md). Each gets every beat,
	 * signed with its own key if it has one (has_key), else with the key
	 * above (one key set shared by all monitors); each answers on its own.
	 * `monitor` must then be NULL. */
	const struct vigil_agent_monitor *monitors;
	uint32_t n_monitors;       /* 0: the one `monitor`; at most VIGIL_AGENT_MAX_MONITORS */
};

/* Start beating from a new thread. Returns NULL with errno set: EINVAL (bad
 * config: no id, no address or both `monitor` and `monitors`, more than
 * VIGIL_AGENT_MAX_MONITORS, key_id > 1, status out of range, queue_low >=
 * queue_high, max_interval_ms above one hour), or the error
 * of the system call that failed (socket, eventfd, timerfd_create,
 * pthread_create). The monitor need not be reachable yet: beats that cannot
 * be sent are counted (view.send_errors) and the agent keeps trying. */
VIGIL_AGENT_API struct vigil_agent *vigil_agent_start(const struct vigil_agent_config *cfg);

/* Stop the thread and free the agent. With `leave`, first send one LEAVING
 * beat (a graceful exit: the monitor stops watching the agent and a lease it
 * holds is handed over at once). The lease is lost either way. */
VIGIL_AGENT_API void vigil_agent_stop(struct vigil_agent *agent, int leave);

/* Report a new status (enum vigil_agent_status) with an immediate beat.
 * DRAINING and LEAVING give a held lease up at once: the agent stops being
 * the holder before this returns. Returns 0 or -EINVAL. */
VIGIL_AGENT_API int vigil_agent_set_status(struct vigil_agent *agent, int status);

/* Report the agent's backlog in the following beats; with `adaptive` it
 * also moves the cadence (at the next beat, within the hysteresis). */
VIGIL_AGENT_API void vigil_agent_set_queue_depth(struct vigil_agent *agent, uint16_t depth);

/* The interval the last beat announced (view.interval_ms). */
VIGIL_AGENT_API uint32_t vigil_agent_interval_ms(const struct vigil_agent *agent);

/* Fill *out with what the agent knows of its lease, evaluated against the
 * clock now: `holder` is 1 only if the safety rule allows acting at this
 * moment. Returns out->holder. */
VIGIL_AGENT_API int vigil_agent_lease(const struct vigil_agent *agent,
				      struct vigil_lease_view *out);

/* Monitor i (0-based, in the order configured) as the agent sees it.
 * Returns 0, or -EINVAL when there is no monitor i. */
VIGIL_AGENT_API int vigil_agent_monitor_view(const struct vigil_agent *agent, uint32_t i,
					     struct vigil_monitor_view *out);

/* Shorthand: 1 and *token if the agent may act as the holder now, else 0. */
VIGIL_AGENT_API int vigil_agent_holds(const struct vigil_agent *agent, uint64_t *token);

/* Wait up to timeout_ms (-1: forever) for the beat loop to end by itself
 * (max_beats reached, or a fatal socket error). Returns 0 when it ended,
 * -ETIMEDOUT otherwise. */
VIGIL_AGENT_API int vigil_agent_wait(struct vigil_agent *agent, int timeout_ms);

/* The clock of deadline_ns and last_ack_ns: CLOCK_BOOTTIME in ns. */
VIGIL_AGENT_API uint64_t vigil_agent_now_ns(void);

/* Parse a key written as 32 hex digits (the format of vigil key gen). */
VIGIL_AGENT_API int vigil_agent_key_parse(const char *hex, uint8_t key[16]);

/* Names for logs: "gained"/"lost"/"token"/"cadence"; "deadline", "other_holder", ... */
VIGIL_AGENT_API const char *vigil_lease_change_name(enum vigil_lease_change what);
VIGIL_AGENT_API const char *vigil_lease_loss_name(enum vigil_lease_loss why);

#ifdef __cplusplus
}
#endif

#endif /* VIGIL_AGENT_H */
