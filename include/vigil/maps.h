/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * Values of every BPF map and ring-buffer record that both the kernel and
 * userspace read or write (docs/maps.md explains each map to an SRE).
 * Fixed-width types only, no pointers, widest fields first.
 */
#ifndef VIGIL_MAPS_H
#define VIGIL_MAPS_H

#include "types.h"
#include "auth.h"

#ifndef __bpf__
#include <linux/bpf.h> /* struct bpf_spin_lock, struct bpf_timer */
#endif

#ifndef VIGIL_NAME_LEN
#define VIGIL_NAME_LEN 32
#endif
#ifndef VIGIL_GROUP_LEN
#define VIGIL_GROUP_LEN 16
#endif
/* Timing-wheel size in ticks; a power of two. With a 1 ms tick one rotation
 * is 65.5 s, so a slot is visited about once per deadline for any interval
 * below that; a deadline further out is re-filed each rotation. 8 bytes per
 * bucket: 512 KiB. */
#ifndef VIGIL_WHEEL_BUCKETS
#define VIGIL_WHEEL_BUCKETS 65536
#endif
/* Default capacity; `vigil run --max-agents` resizes the maps at load. */
/* Inter-arrival histogram buckets per agent: bucket i counts gaps between
 * accepted beats in [2^(i-1), 2^i) ms (bucket 0: under 1 ms; the last: the
 * rest), so an SRE sees how close beats come to the deadline. */
#define VIGIL_GAP_BUCKETS 16

#ifndef VIGIL_MAX_AGENTS
#define VIGIL_MAX_AGENTS 65536
#endif

/* Lease table size; lease ids are 1..VIGIL_MAX_LEASES-1 (0 = none). */
#ifndef VIGIL_MAX_LEASES
#define VIGIL_MAX_LEASES 1024
#endif

/* Life cycle of an agent slot. Every change goes through a compare-and-swap
 * so each transition is taken, and reported, exactly once. */
enum vigil_agent_state {
	VIGIL_AGENT_FREE = 0,    /* slot unused */
	VIGIL_AGENT_NEW = 1,     /* registered, no beat yet; deadline runs from registration */
	VIGIL_AGENT_ALIVE = 2,
	VIGIL_AGENT_SUSPECT = 3, /* first deadline missed */
	VIGIL_AGENT_DEAD = 4,    /* further `dead_misses` intervals missed */
	VIGIL_AGENT_LEFT = 5,    /* announced LEAVING; not monitored until it beats again */
	VIGIL_AGENT_STATE_MAX = VIGIL_AGENT_LEFT,
};

/* agent_slot.state with this bit set: the sweeper has just taken the edge
 * into the state below it and is reporting it. For that moment the beat
 * path takes no edge of its own (its event would come first); the sweeper
 * clears the bit and then answers any beat stored meanwhile (wheel.bpf.h,
 * take_verdict). Readers of a slot mask it off: vigil_state_of(). */
#define VIGIL_AGENT_BUSY 0x100u

VIGIL_INLINE __u32 vigil_state_of(__u32 raw)
{
	return raw & ~VIGIL_AGENT_BUSY;
}

/* Kinds of ring-buffer records. Numbers are part of the event log format. */
enum vigil_event_kind {
	VIGIL_EV_UP = 1,            /* first beat after registration or after leaving */
	VIGIL_EV_SUSPECT = 2,
	VIGIL_EV_DEAD = 3,
	VIGIL_EV_RECOVERED = 4,     /* valid beat from a SUSPECT or DEAD agent */
	VIGIL_EV_RESTART = 5,       /* incarnation rose */
	VIGIL_EV_LEFT = 6,          /* agent announced LEAVING */
	VIGIL_EV_REJECTED = 7,      /* a beat was refused; `reason` says why (rate-capped) */
	/* Lease events: `slot` is the lease id, `agent_id` the holder, `seq` the
	 * fencing token of the grant that ended. */
	VIGIL_EV_LEASE_EXPIRED = 8,  /* no renewing beat within the duration */
	VIGIL_EV_LEASE_RELEASED = 9, /* the holder announced DRAINING or LEAVING */
	/* The monitor's own health: `slot` is the receive queue (VIGIL_PART_RXQ)
	 * or NO_SLOT (VIGIL_PART_SWEEPER), `state` the part (enum vigil_part),
	 * `aux_ns` how far behind; CAUGHT_UP has the episode's largest lag in
	 * aux_ns and its start in last_seen_ns. */
	VIGIL_EV_MONITOR_BEHIND = 10,
	VIGIL_EV_MONITOR_CAUGHT_UP = 11,
	VIGIL_EV_KIND_MAX = VIGIL_EV_MONITOR_CAUGHT_UP,
};

/* Which part of the monitor a MONITOR_* event is about. */
enum vigil_part {
	VIGIL_PART_RXQ = 1,     /* a receive queue: beats reached XDP late */
	VIGIL_PART_SWEEPER = 2, /* the sweeper's timer ran late */
};

/* vigil_event.flags: how a verdict was reached (docs/operations.md). */
#define VIGIL_EVF_HELD 0x01          /* SUSPECT/DEAD waited for receive-path evidence;
				      * aux_ns: how long */
#define VIGIL_EVF_RX_UNVERIFIED 0x02 /* decided at the hold bound without evidence
				      * that the receive path had caught up: the
				      * monitor may have been behind */
#define VIGIL_EVF_BY_BEAT 0x04       /* SUSPECT reported by the beat path: a held
				      * verdict ended by a beat sent after the deadline */
#define VIGIL_EVF_MONITOR_DELAY 0x08 /* RECOVERED: the beat was sent in time for the
				      * missed deadline (aux_ns: its estimated send
				      * time); the SUSPECT/DEAD came from delay after
				      * sending, not from the agent */
#define VIGIL_EVF_MONITOR_BEHIND 0x10 /* taken while the agent's receive queue or the
				       * sweeper was in a MONITOR_BEHIND episode */
#define VIGIL_EVF_BEATS_LOST 0x20     /* RECOVERED: its sequence shows beats sent in
				       * time that never reached XDP (dropped in the
				       * receive ring or the network); SUSPECT/DEAD:
				       * taken while its queue was losing beats */

/* A lease as the kernel sees it. */
enum vigil_lease_state {
	VIGIL_LEASE_FREE = 0,     /* never granted */
	VIGIL_LEASE_HELD = 1,     /* renewed by the holder's beats until expires_ns */
	VIGIL_LEASE_EXPIRED = 2,  /* the daemon grants it again after the grace period */
	VIGIL_LEASE_RELEASED = 3, /* given up; the daemon grants it again at once */
	VIGIL_LEASE_STATE_MAX = VIGIL_LEASE_RELEASED,
};

/* Map fields of these enum types are 4 bytes wide (the compare-and-swaps on
 * them are 32-bit) and show in `bpftool map dump` by name (BTF). */
_Static_assert(sizeof(enum vigil_agent_state) == 4 && sizeof(enum vigil_lease_state) == 4,
	       "state fields are 32-bit");

/* lease_slot.flags */
#define VIGIL_LEASE_F_FORCED 0x01 /* RELEASED by an operator (`vigil lease release|transfer`),
				   * not by the holder: the next grant waits until
				   * expires_ns, when the holder has stopped acting */

/* vigil_leases: one entry per lease id (ARRAY of VIGIL_MAX_LEASES). The
 * daemon writes a grant (after persisting its token) only while the lease is
 * not HELD; XDP extends expires_ns on the holder's beats and releases it;
 * the sweeper expires it. Everyone reads and writes it under `lock`
 * (userspace with BPF_F_LOCK), so no one sees half a grant: an ack for the
 * new holder with the old token, a release of the new grant by the old
 * holder's beat, an expiry of a grant just made (docs/security.md). */
struct lease_slot {
	__u64 holder;         /* agent id of the current grant, 0 = none */
	__u64 token;          /* fencing token of the current grant; only rises */
	__u64 expires_ns;     /* monotonic; the holder's renewing beats move it */
	__u64 granted_ns;
	__u64 renewals;
	__u32 duration_ms;
	enum vigil_lease_state state; /* 4 bytes, typed so bpftool prints its name */
	__u32 flags;          /* VIGIL_LEASE_* */
	struct bpf_spin_lock lock;
	char name[VIGIL_NAME_LEN];
};

/* Why a datagram to the beat port changed nothing. Numbers are part of the
 * event log format. */
enum vigil_reject_reason {
	VIGIL_REJECT_NONE = 0,
	VIGIL_REJECT_MALFORMED = 1,
	VIGIL_REJECT_BAD_VERSION = 2,
	VIGIL_REJECT_UNKNOWN_AGENT = 3,
	VIGIL_REJECT_NOT_ALLOWED = 4,      /* source not in the group's allowlist */
	VIGIL_REJECT_UNAUTHENTICATED = 5,  /* no tag, and authentication is required */
	VIGIL_REJECT_BAD_TAG = 6,
	VIGIL_REJECT_REPLAY = 7,           /* duplicate, older than the window, or older incarnation */
	VIGIL_REJECT_OVER_RATE_AGENT = 8,
	VIGIL_REJECT_OVER_RATE_SOURCE = 9,
	VIGIL_REJECT_MAPPED_SOURCE = 10,   /* IPv6 from ::ffff:0:0/96, which would pass for IPv4 */
	VIGIL_REJECT_REASON_MAX = VIGIL_REJECT_MAPPED_SOURCE,
};

/* agent_auth.flags */
#define VIGIL_AUTH_ALLOWLIST 0x01 /* the agent's group restricts source addresses */
#define VIGIL_AUTH_ACK 0x02       /* answer the agent's valid beats with an acknowledgement */

/*
 * vigil_agents: one slot per registered agent, everything a beat reads or
 * writes and nothing else (ARRAY, mmapable only so that every element starts
 * on a page, hence on a 128-byte boundary: the slot is exactly two cache
 * lines, fetched together). What an accepted beat does not need is in
 * struct agent_info, the keys in struct agent_keys, both at the same index.
 *
 * Writers: the daemon writes a whole slot under `lock` (BPF_F_LOCK) to
 * register or remove an agent; XDP judges and commits a beat's sequence,
 * rate and counts under `lock`, and stores the beat's facts; XDP and the
 * sweeper change `state` by compare-and-swap, and `hold_since_ns` likewise.
 */
struct agent_slot {
	__u64 agent_id;
	__u64 last_seen_ns;   /* monotonic time of the last accepted beat (or registration) */
	/* Anti-replay window: replay.top is the highest accepted sequence and
	 * replay.incarnation its incarnation (at registration: the id's floor). */
	struct vigil_replay replay;
	__u64 rate_tat;       /* GCRA theoretical arrival time of the agent's next beat */
	__u64 send_ts_ns;     /* agent's timestamp in its newest beat */
	/* The agent's clock against ours (vigil_clock_update): the least
	 * (arrival - send_ts), i.e. offset + least one-way delay, seen at
	 * clock_at_ns and allowed to rise by VIGIL_CLOCK_DRIFT_PPM since.
	 * send_ts + the estimate = the earliest the beat could have reached
	 * XDP, on the monitor's clock. */
	__s64 clock_off_ns;
	__u64 clock_at_ns;    /* when clock_off_ns was seen (0: no estimate yet) */
	__u64 hold_since_ns;  /* a verdict waits for receive-path evidence since
			       * (set by the sweeper; whoever clears it with a
			       * compare-and-swap decides the verdict) */
	__u64 beats;          /* accepted beats (counted under the lock) */
	enum vigil_agent_state state; /* 4 bytes, typed so bpftool prints its name */
	struct bpf_spin_lock lock; /* replay, rate_*, beats, gap_* and registration */
	__u32 interval_ms;    /* advertised interval, clamped to the bounds below */
	__u32 interval_min_ms;
	__u32 interval_max_ms;
	__u32 rate_interval_ms; /* the interval rate_tat was built up at */
	__u32 lease_id;
	/* Inter-arrival times, run-length coded: the last gap_run gaps all fell
	 * in bucket gap_bucket, and are not yet in agent_info.gap_hist (they go
	 * there when a gap falls in another bucket). A steady agent's beats so
	 * never touch the cold record. */
	__u32 gap_run;
	__u16 multiplier;     /* deadline = last_seen + multiplier x interval */
	__u16 queue_depth;
	__u16 rxq;            /* receive queue of the last accepted beat */
	enum vigil_status status; /* of the newest beat; 1 byte (packed) */
	__u8 gap_bucket;
};

_Static_assert(sizeof(struct agent_slot) == 128, "an agent slot is two cache lines");

/* vigil_agent_info: the rest of an agent (ARRAY, same index as vigil_agents):
 * its names, when its state last changed, its refusal counters and its gap
 * histogram. Written by the daemon at registration, by XDP when it refuses a
 * beat that names the agent or takes an edge, and by the sweeper's edges. */
struct agent_info {
	__u64 state_since_ns; /* when `state` last changed */
	__u64 last_event_seq; /* event_seq of the transition into `state` */
	__u64 duplicates;     /* same sequence again */
	__u64 reordered;      /* accepted late: older sequence, inside the window */
	__u64 malformed;      /* named this agent but failed to parse */
	__u64 bad_version;    /* named this agent with a version we do not speak */
	__u64 restarts;       /* incarnation rises seen */
	__u64 bad_tag;        /* named this agent but failed authentication */
	__u64 replayed;       /* authentic but replayed (too old, old incarnation) */
	__u64 over_rate;      /* authentic but beyond the agent's rate limit */
	__u32 gap_hist[VIGIL_GAP_BUCKETS]; /* see VIGIL_GAP_BUCKETS; + agent_slot.gap_run */
	char name[VIGIL_NAME_LEN];
	char group[VIGIL_GROUP_LEN];
};

/* wheel_links: the sweeper's private bookkeeping per slot (ARRAY, same size
 * as agents). Only the sweeper writes it, which is what lets the wheel be a
 * set of intrusive singly linked lists without locks. */
struct wheel_link {
	__u64 due_tick;  /* tick of the bucket this slot is filed in */
	__u32 next;      /* next slot + 1 in the same bucket, 0 = end */
	__u16 in_wheel;  /* 1 while filed in a bucket or in the sweeper's work list */
	__u16 hold_step; /* ticks until the next look at a held verdict (doubles) */
};

/* wheel_buckets: list heads (ARRAY of VIGIL_WHEEL_BUCKETS). Sweeper only. */
struct wheel_bucket {
	__u32 head; /* first slot + 1, 0 = empty */
	__u32 len;  /* slots filed here, for observability */
};

/* wheel_state: the sweeper's cursor and its own health (ARRAY of 1). */
struct wheel_state {
	__u64 next_tick;      /* first tick not yet fully processed */
	__u64 last_run_ns;    /* when the sweeper last ran */
	__u64 runs;           /* timer callbacks */
	__u64 visits;         /* slots examined */
	__u64 refiled;        /* slots put back into a later bucket */
	__u64 busy_ns;        /* time spent inside callbacks */
	__u64 max_lag_ticks;  /* largest backlog seen, in ticks */
	__u64 budget_exhausted; /* callbacks that stopped on the visit budget */
	__u32 work_head;      /* slot + 1 of the detached list being processed */
	__u32 filed;          /* slots currently in the wheel */
	/* The sweeper's own lateness, as a MONITOR_BEHIND episode. */
	__u64 lag_ticks;        /* backlog at the last callback */
	__u64 behind_since_ns;  /* 0: on time */
	__u64 behind_max_ticks; /* largest backlog of the current or last episode */
	__u64 behind_episodes;
	__u64 health_next_ns;   /* next look at the receive queues */
	__u32 last_late_ms;     /* monotonic ms (mod 2^32) of the last callback behind */
	__u32 pad;
};

/* Receive queues watched for lateness (rx_queue_index modulo this). */
#define VIGIL_MAX_RXQ 64

/* vigil_rxq: each receive queue's progress, from the beats XDP accepted
 * there (ARRAY of VIGIL_MAX_RXQ, one cache line each: a queue is served by
 * one CPU at a time). `sent_wm_ns` is the evidence the sweeper needs before
 * a verdict: a beat sent at or after the deadline has already been
 * processed on the agent's queue, so a beat the agent sent before it would
 * have been too (docs/design.md, "receive-path evidence"). */
struct rxq_state {
	__u64 sent_wm_ns;     /* latest estimated send time (monitor clock) of a beat
			       * accepted on this queue */
	__u64 last_rx_ns;     /* when it was accepted */
	__u64 lag_ns;         /* its delay beyond its agent's least delay */
	__u64 win_lag_min_ns; /* least such delay since the sweeper last looked
			       * (~0: no beat since); the sweeper resets it */
	__u64 beats;          /* beats with a timestamp accepted here */
	__u64 behind_since_ns; /* MONITOR_BEHIND episode: 0 = on time (sweeper) */
	__u64 behind_max_ns;  /* largest delay of the current or last episode */
	__u32 last_late_ms;   /* monotonic ms (mod 2^32) of the last sample behind */
	__u32 episodes;
	/* Beats proven lost (a sequence gap) before reaching XDP: the receive
	 * ring overflowed, or the network dropped them. A burst of losses over
	 * an agent's silence means its own beats may have been dropped too, so
	 * its verdict waits (vigil_loss_overlaps). Send times, monitor clock. */
	__u64 loss_from_ns;   /* current loss episode: earliest lost send time */
	__u64 loss_to_ns;     /* ... latest */
	__u64 burst_from_ns;  /* last episode of VIGIL_LOSS_BURST or more lost beats */
	__u64 burst_to_ns;
	__u64 lost;           /* beats proven lost on this queue */
	__u32 loss_beats;     /* lost beats in the current episode */
	__u32 bursts;
	__u64 pad[2];         /* two cache lines */
};

/* vigil_config: settings the daemon may change at run time (ARRAY of 1). */
struct vigil_config {
	__u32 dead_misses;           /* further missed intervals from SUSPECT to DEAD */
	__u32 pass_beats;            /* 1: XDP_PASS consumed beats instead of XDP_DROP */
	__u32 reject_events_per_sec; /* cap on REJECTED events */
	__u32 sweep_budget;          /* slots the sweeper may visit per tick */
	__u32 auth_required;         /* 1: beats without a tag are refused */
	__u32 replay_window;         /* sequences accepted below the highest (1..64) */
	__u32 rate_multiple;         /* an agent may beat this many times its advertised rate */
	__u32 rate_burst;            /* ... with this many beats of burst (0: no agent limit) */
	__u32 source_pps;            /* datagrams per second per source address (0: no limit) */
	__u32 source_burst;
	__u32 recommend_interval_ms; /* sent in acknowledgements (storm control); 0: none */
	__u32 hold_max_ms;           /* longest a verdict waits for receive-path evidence
				      * (0: decide at the deadline) */
};

/* vigil_globals: host-wide counters that must be shared, not per-CPU. */
struct vigil_globals {
	__u64 event_seq;           /* last event sequence handed out; only rises */
	__u64 reject_window_ns;    /* start of the current REJECTED-event rate window */
	__u64 reject_in_window;    /* REJECTED events sent in that window */
};

/* vigil_stats: per-CPU counters (PERCPU_ARRAY of 1); sum across CPUs. */
struct vigil_stats {
	__u64 packets;        /* packets seen by the XDP program */
	__u64 beats;          /* accepted beats */
	__u64 passed;         /* non-beat traffic passed up */
	__u64 malformed;      /* beat-port datagrams that failed to parse */
	__u64 bad_version;
	__u64 unknown_agent;
	__u64 duplicates;
	__u64 reordered;
	__u64 restarts;
	__u64 events;         /* records submitted to the ring buffer */
	__u64 ringbuf_full;   /* records lost because the ring buffer was full */
	__u64 queue_full;     /* slots that could not be handed to the sweeper */
	__u64 stale_slot;     /* index pointed at a slot that no longer held the agent */
	__u64 not_allowed;    /* source outside the agent group's allowlist */
	__u64 unauthenticated;
	__u64 bad_tag;
	__u64 replayed;
	__u64 over_rate_agent;
	__u64 over_rate_source;
	/* Verdicts and the receive path (docs/operations.md). */
	__u64 verdicts_held;       /* SUSPECT/DEAD held for receive-path evidence */
	__u64 held_decided;        /* ... then taken: the evidence came */
	__u64 held_unverified;     /* ... then taken at the bound, without evidence */
	__u64 held_cancelled;      /* ... then dropped: a beat sent in time arrived */
	__u64 held_by_beat;        /* ... then reported by a beat sent after the deadline */
	__u64 held_ns;             /* total time verdicts were held */
	__u64 held_max_ns;         /* longest hold (take the max across CPUs) */
	__u64 corrected;           /* RECOVERED with MONITOR_DELAY: a false verdict undone */
	__u64 lost_beats;          /* beats proven lost by a sequence gap */
	__u64 mapped_source;       /* IPv6 from an IPv4-mapped source (::ffff:0:0/96) */
};

/* One key set of an agent: its keys and source policy. */
struct agent_auth {
	struct vigil_key key[2]; /* current and next: keys roll without a missed beat */
	__u32 valid;             /* bit i: key[i] is set */
	__u32 flags;             /* VIGIL_AUTH_* */
	__u32 group_id;          /* vigil_group_id(group): key into vigil_allow */
	__u32 pad;
};

/* vigil_auth: an agent's key sets (ARRAY by slot, mmapable for its 128-byte
 * alignment: one cache-line pair). Userspace writes the keys; XDP reads the
 * copy `sel` (bit 0) names. Userspace writes the other copy and then flips
 * `sel` (vg_auth_set), so rotating keys never races with the beat path.
 * `agent_id` is whose keys they are: removing an agent zeroes it first, and
 * XDP checks it under the slot's lock before it commits a beat, so no beat
 * moves a window after the daemon read it as the id's floor.
 * `beat_src` is the one field XDP writes: the source address of the agent's
 * newest accepted beat (zero: none yet). A datagram that names the agent
 * from that address skips the per-source limit (docs/security.md), so a
 * flood from the agent's address cannot crowd out its real beats. A
 * userspace write of the element may put back an older value: that only
 * sends the agent's next beat through the per-source limit. */
struct agent_keys {
	__u64 agent_id;
	__u32 sel;               /* how often the keys were swapped; bit 0: the copy in force */
	__u32 pad;
	struct agent_auth copy[2];
	__u8 beat_src[16] __attribute__((aligned(8))); /* IPv4 as ::ffff:a.b.c.d */
};

_Static_assert(sizeof(struct agent_keys) == 128, "an agent's keys are two cache lines");

/* vigil_floors: where the replay window of an agent id stood when it was
 * unregistered (LRU_HASH agent id -> floor, capacity max_agents). Written by
 * userspace when an agent is removed and by the daemon from its event log
 * at start; a registration of the id starts its window there. XDP does not
 * read it. */
struct replay_floor {
	__u64 seq;         /* the newest accepted (incarnation, seq) */
	__u32 incarnation;
	__u32 pad;
};

/* vigil_groups: per-group policy for userspace (HASH group_id -> policy),
 * so `vigil agent add` gives a new agent its group's allowlist flag. */
struct group_policy {
	__u32 flags; /* VIGIL_AUTH_* that agents of the group get */
	char name[VIGIL_GROUP_LEN];
};

/* vigil_sources: per-source-address rate state (LRU_HASH, preallocated, so
 * a flood of new sources evicts old entries and allocates nothing). IPv6
 * sources in ::ffff:0:0/96 are refused before they get here, so an IPv4
 * source's entry is its own. */
struct source_key {
	__u8 addr[16]; /* IPv6, or IPv4-mapped (::ffff:a.b.c.d) */
};

/* vigil_allow: per-group source allowlist (LPM_TRIE). The prefix covers
 * the 32-bit group id, the family, then the address: IPv4 and IPv6
 * prefixes never match each other's sources (`::/0` admits no IPv4). */
struct allow_key {
	__u32 prefixlen; /* VIGIL_ALLOW_PREFIX_BASE + the address prefix length */
	__u32 group_id;
	__u8 family;     /* 4 or 6 */
	__u8 addr[16];   /* IPv4 in addr[0..3] */
	__u8 pad[3];
};

#define VIGIL_ALLOW_PREFIX_BASE (32 + 8) /* group id and family */

/* vigil_meta: what a pinned instance was started with, so a later daemon or
 * CLI can adopt it (ARRAY of 1, written once by the loading daemon). */
struct vigil_meta {
	__u64 instance_id;    /* random at load: keys the durable log across detach/load */
	__u64 tick_ns;
	__u32 layout_version; /* VIGIL_LAYOUT_VERSION of the loader */
	__u32 max_agents;
	__u32 ifindex;
	__u16 port;           /* host order */
	__u8 skb_mode;
	__u8 pad;
	__u64 id_base;        /* agent id id_base + i is placed in slot i when free */
};

/* Bump when a pinned map's layout changes: an instance pinned with another
 * layout is refused, never silently recreated (docs/maps.md). */
#define VIGIL_LAYOUT_VERSION 10 /* 10: hot and cold agent records */

/* One ring-buffer record: a state transition or a notable beat. */
struct vigil_event {
	__u64 event_seq;    /* per-host, rises by one per event (gaps = losses) */
	__u64 agent_id;
	__u64 last_seen_ns; /* monotonic time of the last accepted beat */
	__u64 detected_ns;  /* monotonic time the transition was taken */
	__u64 seq;          /* agent's beat sequence at the time */
	__u64 aux_ns;       /* by kind and flags: how long a verdict was held
			     * (VIGIL_EVF_HELD), a beat's estimated send time
			     * (VIGIL_EVF_MONITOR_DELAY), how far behind (MONITOR_*) */
	__u32 slot;         /* 0xffffffff: no slot (unknown agent) */
	__u32 kind;         /* enum vigil_event_kind */
	__u32 incarnation;
	__u32 interval_ms;
	__u16 state;        /* state after the event */
	__u16 prev_state;
	__u16 reason;       /* enum vigil_reject_reason, for REJECTED */
	__u16 flags;        /* VIGIL_EVF_* */
	__u8 src_addr[16];  /* sender, for REJECTED (IPv4-mapped for IPv4) */
};

_Static_assert(sizeof(struct vigil_event) == 88, "event record is 88 bytes");

/* The group id that keys the allowlist: FNV-1a of the group name. */
VIGIL_INLINE __u32 vigil_group_id(const char *name, __u32 len)
{
	__u32 h = 2166136261u;

	for (__u32 i = 0; i < len && name[i]; i++)
		h = (h ^ (__u8)name[i]) * 16777619u;
	return h;
}

#endif /* VIGIL_MAPS_H */
