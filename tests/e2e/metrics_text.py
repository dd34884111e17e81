"""A strict parser of the Prometheus text exposition format 0.0.4, for the
e2e tests of GET /metrics. Every line must be a HELP, a TYPE or a sample of a
family declared before it; a series may appear once; histogram buckets must be
cumulative and end with le="+Inf" equal to _count."""
import math
import re

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
HELP_RE = re.compile(rf"# HELP ({NAME}) (.*)")
TYPE_RE = re.compile(rf"# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)")
SAMPLE_RE = re.compile(rf"({NAME})(?:\{{(.*)\}})? (\S+)")
LABEL_RE = re.compile(rf'({LABEL_NAME})="((?:\\[\\"n]|[^\\"\n])*)"(,|$)')
VALUE_RE = re.compile(r"[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|[-+]?Inf|NaN")


def _unescape(v):
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "\\": "\\", '"': '"'}[m.group(1)], v)


def _labels(text, line):
    out = {}
    pos = 0
    while pos < len(text):
        m = LABEL_RE.match(text, pos)
        assert m, f"bad labels in {line!r}"
        assert m.group(1) not in out, f"label {m.group(1)} twice in {line!r}"
        out[m.group(1)] = _unescape(m.group(2))
        pos = m.end()
        if m.group(3) == "":
            assert pos == len(text), line
    return out


def _value(text, line):
    assert VALUE_RE.fullmatch(text), f"bad value in {line!r}"
    return float(text.replace("Inf", "inf"))


class Exposition:
    def __init__(self, text):
        self.types = {}   # family -> type
        self.helps = {}
        self.samples = {}  # (name, frozenset(labels)) -> value
        assert text.endswith("\n"), "exposition must end with a newline"
        family = None
        for line in text.split("\n")[:-1]:
            assert line, "empty line in exposition"
            if line.startswith("#"):
                m = HELP_RE.fullmatch(line)
                if m:
                    assert m.group(1) not in self.helps, f"HELP twice: {line}"
                    self.helps[m.group(1)] = m.group(2)
                    continue
                m = TYPE_RE.fullmatch(line)
                assert m, f"bad comment line {line!r}"
                assert m.group(1) not in self.types, f"TYPE twice: {line}"
                assert m.group(1) not in {n for n, _ in self.samples}, \
                    f"TYPE after samples of {m.group(1)}"
                self.types[m.group(1)] = m.group(2)
                family = m.group(1)
                continue
            m = SAMPLE_RE.fullmatch(line)
            assert m, f"bad sample line {line!r}"
            name, labels, value = m.group(1), _labels(m.group(2) or "", line), \
                _value(m.group(3), line)
            assert family is not None, f"sample before any TYPE: {line}"
            kind = self.types[family]
            if kind == "histogram":
                assert name in (family + "_bucket", family + "_sum", family + "_count"), \
                    f"{name} in histogram {family}"
                if name == family + "_bucket":
                    assert "le" in labels, line
            else:
                assert name == family, f"sample {name} under TYPE {family}"
                assert "le" not in labels, line
            key = (name, frozenset(labels.items()))
            assert key not in self.samples, f"series twice: {line}"
            if kind == "counter":
                assert value >= 0 and not math.isnan(value), line
            self.samples[key] = value
        for fam, kind in self.types.items():
            if kind == "histogram":
                self._check_histogram(fam)

    def _check_histogram(self, fam):
        series = {}
        for (name, labels), v in self.samples.items():
            if name != fam + "_bucket":
                continue
            d = dict(labels)
            le = d.pop("le")
            series.setdefault(frozenset(d.items()), []).append((float(le.replace("Inf", "inf")), v))
        for rest, buckets in series.items():
            buckets.sort()
            assert buckets[-1][0] == math.inf, f"{fam}{dict(rest)} has no +Inf bucket"
            counts = [c for _, c in buckets]
            assert counts == sorted(counts), f"{fam}{dict(rest)} buckets not cumulative: {buckets}"
            count = self.samples.get((fam + "_count", rest))
            assert count is not None and (fam + "_sum", rest) in self.samples, fam
            assert count == counts[-1], f"{fam}: +Inf bucket {counts[-1]} != _count {count}"

    def value(self, name, default=0.0, **labels):
        return self.samples.get((name, frozenset(labels.items())), default)

    def series(self, name):
        """[(labels dict, value)] of every sample called `name`."""
        return [(dict(l), v) for (n, l), v in self.samples.items() if n == name]
