#!/usr/bin/env python3
# SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause)
"""The metrics that shipped PromQL names, checked against a real /metrics.

    promql_names.py exprs --rules RULES.yml --dashboard DASH.json
        every PromQL expression of the rules (expr) and of the Grafana
        dashboard (targets, template queries), one JSON string per line, with
        the dashboard's variables replaced ($instance by .*, $__rate_interval
        by 1m) so that Prometheus can run them.

    promql_names.py check --rules RULES.yml --dashboard DASH.json --metrics FILE
        every metric those expressions name must have a sample in FILE (the
        text a daemon served on /metrics), and every label they match on
        (name="value", name=~"re"...) must be a label of that metric, with
        the value among the metric's values when the matcher is `=`. Names
        the rules record themselves, and Prometheus' own `up`, are not
        looked for. Prints one line per problem and exits 1 if there is one;
        otherwise a summary line.

The expressions are tokenised, not pattern-matched for a prefix: strings,
label lists of by/without/on/ignoring/group_left/group_right, range
selectors and numbers are set aside; an identifier followed by "(" (or by
"by"/"without") is a function or an aggregation; keywords are skipped; what is left is a metric
name, with the matchers in the braces that follow it.
"""
import argparse
import json
import re
import sys

import yaml

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "inf", "nan", "atan2"}
PROMETHEUS_OWN = {"up"}
TOKEN = re.compile(r"""
    (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<range>\[[^\]]*\])
  | (?P<number>\d+(?:\.\d*)?(?:e[+-]?\d+)?|\.\d+)
  | (?P<ident>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<lbrace>\{)
  | (?P<rbrace>\})
  | (?P<lparen>\()
  | (?P<other>\S)
""", re.X)
MATCHER = re.compile(r'\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*("(?:[^"\\]|\\.)*")\s*,?')


def tokens(expr):
    return [(m.lastgroup, m.group(m.lastgroup)) for m in TOKEN.finditer(expr)]


def selectors(expr):
    """(metric, [(label, op, value)]) for each vector selector in expr."""
    toks = tokens(expr)
    out = []
    i = 0
    while i < len(toks):
        kind, text = toks[i]
        nxt = toks[i + 1] if i + 1 < len(toks) else (None, None)
        if kind == "ident" and text in ("by", "without", "on", "ignoring", "group_left",
                                        "group_right") and nxt[0] == "lparen":
            while i < len(toks) and toks[i][1] != ")":  # skip the label list
                i += 1
        elif (kind == "ident" and text.lower() not in KEYWORDS and nxt[0] != "lparen" and
              nxt[1] not in ("by", "without")):  # sum by (x) (...): an aggregation
            matchers = []
            if nxt[0] == "lbrace":
                j = i + 2
                body = []
                while j < len(toks) and toks[j][0] != "rbrace":
                    body.append(toks[j][1])
                    j += 1
                matchers = parse_matchers("".join(body))
                i = j
            out.append((text, matchers))
        elif kind == "lbrace":  # a selector without a name: {__name__="..."}
            j = i + 1
            while j < len(toks) and toks[j][0] != "rbrace":
                j += 1
            i = j
        i += 1
    return out


def parse_matchers(body):
    res = []
    for m in MATCHER.finditer(body):
        res.append((m.group(1), m.group(2), json.loads(m.group(3))))
    return res


def grafana_exprs(node, out):
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "expr" and isinstance(v, str):
                out.append(v)
            elif k == "query" and isinstance(v, str) and v.startswith("label_values("):
                out.append(re.sub(r"^label_values\(\s*([^,)]*).*", r"\1", v))
            else:
                grafana_exprs(v, out)
    elif isinstance(node, list):
        for v in node:
            grafana_exprs(v, out)


def expressions(rules_path, dash_path):
    rules = yaml.safe_load(open(rules_path))
    recorded, exprs = set(), []
    for g in rules["groups"]:
        for r in g["rules"]:
            exprs.append(("rule " + r.get("alert", r.get("record")), r["expr"]))
            if "record" in r:
                recorded.add(r["record"])
    dash = []
    grafana_exprs(json.load(open(dash_path)), dash)
    for e in dash:
        e = e.replace("$__rate_interval", "1m").replace("$__interval", "1m")
        e = re.sub(r"\$\{?instance\}?", ".*", e)
        if "$" in e:
            sys.exit(f"dashboard: an expression uses a variable this check does not know: {e}")
        exprs.append(("dashboard", e))
    return exprs, recorded


def scraped(metrics_path):
    """metric name -> {label: set(values)} from the text format."""
    series = {}
    sample = re.compile(r'^([A-Za-z_:][A-Za-z0-9_:]*)(\{(.*)\})?\s+\S+')
    label = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"')
    for line in open(metrics_path, encoding="utf-8", errors="replace"):
        m = sample.match(line)
        if not m or line.startswith("#"):
            continue
        labels = series.setdefault(m.group(1), {})
        for ln, lv in label.findall(m.group(3) or ""):
            labels.setdefault(ln, set()).add(lv)
    return series


def check(args):
    exprs, recorded = expressions(args.rules, args.dashboard)
    series = scraped(args.metrics)
    problems, names, n_matchers = [], set(), 0
    for where, e in exprs:
        for name, matchers in selectors(e):
            if name in recorded or name in PROMETHEUS_OWN:
                continue
            names.add(name)
            if name not in series:
                problems.append(f"{where}: {name} is not on /metrics (in: {e.strip()})")
                continue
            for ln, op, lv in matchers:
                if ln in ("job", "instance", "__name__"):
                    continue  # added by Prometheus
                n_matchers += 1
                have = series[name]
                if ln not in have:
                    problems.append(f"{where}: {name} has no label {ln} (in: {e.strip()})")
                elif op == "=" and lv not in have[ln]:
                    problems.append(f"{where}: {name}{{{ln}=\"{lv}\"}} matches no series "
                                    f"(values: {', '.join(sorted(have[ln]))})")
    for p in problems:
        print(p)
    if not problems:
        print(f"{len(exprs)} expressions name {len(names)} metrics and {n_matchers} label "
              f"matchers, all on /metrics")
    return 1 if problems else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=["exprs", "check"])
    ap.add_argument("--rules", required=True)
    ap.add_argument("--dashboard", required=True)
    ap.add_argument("--metrics")
    args = ap.parse_args()
    if args.what == "exprs":
        for _, e in expressions(args.rules, args.dashboard)[0]:
            print(json.dumps(e))
        return 0
    if not args.metrics:
        ap.error("check needs --metrics")
    return check(args)


if __name__ == "__main__":
    sys.exit(main())
