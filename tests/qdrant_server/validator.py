"""Request-body validator compiled from Qdrant's OpenAPI schema (openapi.json).

Owns: turning an OpenAPI 3.0 schema (``$ref``, ``anyOf``/``oneOf``/``allOf``, ``type``,
``nullable``, ``required``, ``properties``, ``additionalProperties``, ``items``, ``enum``,
``minimum``/``maximum``/``exclusiveMinimum``, ``minItems``/``maxItems``,
``minLength``/``maxLength``, ``format``) into plain Python closures.

Invariants (mirroring Qdrant = serde deserialisation, then the ``validator`` crate):
  * A *shape* error (wrong JSON type, missing required field, unknown enum variant, unknown field
    where ``additionalProperties: false``, integer out of its format's range, bad uuid, no
    ``anyOf`` branch matches) raises :class:`FormatError`; the HTTP layer answers
    400 ``Format error in JSON body: <msg>``.
  * A body that deserialises but breaks a *range/length* constraint is reported by
    :meth:`Validator.validate` as a list of ``(path, message)``; the HTTP layer answers
    422 ``Validation error in JSON body: [path: msg; ...]``.
  * In ``anyOf``, the first branch without shape errors wins (serde ``untagged``) and only its
    constraint errors count.
  * Arrays of numbers are checked with one ``set(map(type, arr))`` so 384-dim vectors stay cheap;
    ``fast=True`` (bench mode) skips per-element checks of such arrays entirely.
"""
import json
import uuid

MAX_U64 = (1 << 64) - 1
INT_FORMATS = {
    "uint64": (0, MAX_U64), "uint": (0, MAX_U64), "uint32": (0, (1 << 32) - 1),
    "uint8": (0, 255), "int64": (-(1 << 63), (1 << 63) - 1),
}
# serde type names, used in messages such as "invalid type: string \"x\", expected u64"
FORMAT_NAMES = {"uint64": "u64", "uint": "usize", "uint32": "u32", "uint8": "u8", "int64": "i64"}

# Constraints enforced by Qdrant's validator crate but absent from the schema.
EXTRA_CONSTRAINTS = {
    ("VectorParams", "size"): {"maximum": 65536},
}

# Structs Qdrant wraps as ``{#[serde(flatten)] <field>: …Internal, shard_key}``: their validation
# paths start with that field name (``scroll_request.limit``), and serde buffers a flattened
# struct's entries, so its format errors point at the struct's end.
FLATTENED = {"ScrollRequest": "scroll_request", "QueryRequest": "internal",
             "PointRequest": "point_request", "CountRequest": "count_request",
             "SearchRequest": "search_request"}

# Integer fields Qdrant types as NonZero: 0 is a shape error (400), not a range error (422).
NONZERO = {("VectorParams", "size")}

# Array lengths checked by Qdrant's validator with a message of its own.
ITEM_MESSAGES = {("UpdateVectors", "points"): "must specify points to update"}

# anyOf schemas that Qdrant deserialises with code of its own (not serde's ``untagged``): the one
# branch their discriminating keys select reports its own error. Every other anyOf is serde's
# ``untagged``: any failure is "data did not match any variant of untagged enum X".
KEEP_INNER = {"Condition", "PointInsertOperations"}

# Qdrant replaces serde's "did not match any variant" message for some untagged enums.
UNTAGGED_MESSAGES = {
    "PointInsertOperations": "Invalid PointInsertOperations format",
    "Match": "data did not match any variant of untagged enum MatchInterface",   # serde(from)
    "Condition": ("Expected some form of condition, which can be a field condition (like "
                  "{\"key\": ..., \"match\": ... }), or some other mentioned in the documentation: "
                  "https://qdrant.tech/documentation/concepts/filtering/#filtering-conditions"),
    "QueryInterface": "Expected some form of vector, id, or a type of query",
    "VectorInput": "Expected some form of vector, id, or a type of query",
}

_NUM_TYPES = {int, float}


def _check_sparse(v, path, errs):
    """Qdrant's SparseVector::validate (validator-crate errors with a bare code)."""
    if len(v["indices"]) != len(v["values"]):
        errs.append((_join(path, "values"),
                     "Validation error: must be the same length as indices [{}]"))
    if len(set(v["indices"])) != len(v["indices"]):
        errs.append((_join(path, "indices"), "Validation error: must be unique [{}]"))


def _check_batch(v, path, errs):
    """Qdrant's Batch::validate: every column as long as ``ids`` (422, path ``batch.batch``)."""
    n = len(v["ids"])
    vs = v.get("vectors")
    cols = [vs] if isinstance(vs, list) else list(vs.values()) if isinstance(vs, dict) else []
    for col in cols:
        if isinstance(col, list) and len(col) != n:
            errs.append((_join(path, "batch"),
                         f"number of ids and vectors must be equal ({n} != {len(col)})"))
            return
    payloads = v.get("payloads")
    if isinstance(payloads, list) and len(payloads) != n:
        errs.append((_join(path, "batch"),
                     f"number of ids and payloads must be equal ({n} != {len(payloads)})"))


# Struct-level validations Qdrant performs in code rather than in the schema.
EXTRA_OBJECT_CHECKS = {"SparseVector": _check_sparse, "Batch": _check_batch}


class FormatError(Exception):
    """Shape error: the body does not deserialise (HTTP 400).

    ``jpath`` (keys/indices from the body's root, filled in while the error unwinds) and
    ``mode`` say where serde_json would report it (its `` at line L column C`` suffix):
    ``end`` — after the value at ``jpath`` (a scalar that failed, a struct missing a field);
    ``start`` — before it (a container of the wrong type is only peeked at); ``key`` — after
    the key ``jpath[-1]`` (unknown field); ``after`` — the value was buffered (untagged enum,
    custom deserialiser): the error surfaces in the enclosing container, which then skips
    whitespace and its own closing bracket if that comes next; for the root: no position."""

    def __init__(self, msg, mode="end"):
        super().__init__(msg)
        self.jpath = []
        self.mode = mode


def _within(e, step):
    """Record one more level of the value path while an error unwinds."""
    e.jpath.insert(0, step)
    return e


class PointIdError(FormatError):
    """An invalid point id: its message survives enclosing untagged enums, as in Qdrant."""


def parse_uuid(text):
    """Canonical form of a UUID string in one of the forms the ``uuid`` crate accepts (hyphenated,
    simple 32 hex digits, ``{hyphenated}``, ``urn:uuid:hyphenated``; any case), else None.
    Python's ``uuid.UUID`` also accepts hyphens anywhere, which Qdrant rejects."""
    if len(text) == 45 and text[:9].lower() == "urn:uuid:":
        text = text[9:]
    elif len(text) == 38 and text[0] == "{" and text[-1] == "}":
        text = text[1:-1]
    if len(text) == 36:
        if text[8] != "-" or text[13] != "-" or text[18] != "-" or text[23] != "-":
            return None
        text = text.replace("-", "")
    if len(text) != 32 or not all(c in "0123456789abcdefABCDEF" for c in text):
        return None
    return str(uuid.UUID(hex=text))


def point_id_error(value):
    """Qdrant's message for an invalid ExtendedPointId."""
    if isinstance(value, str):
        shown = value
    elif value is None:
        shown = "Unit"
    elif isinstance(value, float):
        shown = rust_float(value)
    else:
        shown = json.dumps(value)
    return PointIdError(f"value {shown} is not a valid point ID, valid values are either an "
                       f"unsigned integer or a UUID")


def rust_float(x):
    """Rust's ``Display`` of an f64: shortest round-trip digits, never an exponent, no ``.0``
    (``3``, ``1.5``, ``18446744073709552000``)."""
    from decimal import Decimal
    if x != x or x in (float("inf"), float("-inf")):
        return {True: "NaN"}.get(x != x, "inf" if x > 0 else "-inf")
    d = Decimal(repr(x))
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text


def _describe(v):
    """serde's 'invalid type' wording of a JSON value."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return f"boolean `{'true' if v else 'false'}`"
    if isinstance(v, int):
        return f"integer `{v}`"
    if isinstance(v, float):
        return f"floating point `{v!r}`"
    if isinstance(v, str):
        return f"string {json.dumps(v)}"
    if isinstance(v, list):
        return "sequence"
    return "map"


def _num(v):
    """Render a bound like the validator crate (integers without a fraction)."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def _join(path, key):
    return f"{path}.{key}" if path else key


class Validator:
    """Compiles schemas of one OpenAPI document on demand and caches them by ``$ref``."""

    def __init__(self, spec, fast=False):
        self.spec = spec
        self.schemas = spec["components"]["schemas"]
        self.fast = fast
        self._refs = {}

    # -- public -------------------------------------------------------------------------------
    def validator_for(self, ref_name):
        """Return ``check(value) -> list of (path, msg)``; raises FormatError on shape errors."""
        fn = self._ref(ref_name)

        def check(value):
            errs = []
            fn(value, "", errs)
            return errs
        return check

    # -- compiler -----------------------------------------------------------------------------
    def _ref(self, name):
        if name in self._refs:
            return self._refs[name]
        cell = []

        def deferred(v, path, errs):
            return cell[0](v, path, errs)
        self._refs[name] = deferred
        cell.append(self._compile(self.schemas[name], name))
        self._refs[name] = cell[0]
        return cell[0]

    def _compile(self, s, name=None, prop=None):
        if "$ref" in s:
            return self._ref(s["$ref"].rsplit("/", 1)[1])
        nullable = s.get("nullable", False)
        if "anyOf" in s or "oneOf" in s:
            inner = self._any_of(s.get("anyOf") or s.get("oneOf"), name, prop)
        elif "allOf" in s:
            parts = [self._compile(x, name) for x in s["allOf"]]

            def inner(v, path, errs):
                for p in parts:
                    p(v, path, errs)
        else:
            inner = self._typed(s, name)
        if not nullable:
            return inner

        def nullable_fn(v, path, errs):
            if v is None:
                return
            inner(v, path, errs)
        return nullable_fn

    def _kinds(self, s, depth=0):
        """JSON kinds a schema can accept (None = anything) and its required keys."""
        if depth > 20:
            return None, ()
        if "$ref" in s:
            return self._kinds(self.schemas[s["$ref"].rsplit("/", 1)[1]], depth + 1)
        for key in ("anyOf", "oneOf"):
            if key in s:
                kinds, req = set(), None
                for b in s[key]:
                    k, r = self._kinds(b, depth + 1)
                    if k is None:
                        return None, ()
                    kinds |= k
                    req = r if req is None else tuple(x for x in req if x in r)
                return kinds, req or ()
        if "allOf" in s:
            return self._kinds(s["allOf"][0], depth + 1)
        if set(s) <= {"nullable", "description", "default"}:
            return {type(None)}, ()
        t = s.get("type")
        if "enum" in s:
            t = t or "string"
        if t is None and ("properties" in s or "required" in s):
            t = "object"
        kinds = {"object": {dict}, "array": {list}, "string": {str}, "boolean": {bool},
                 "integer": {int}, "number": {int, float}}.get(t)
        if kinds is None:
            return None, ()
        if s.get("nullable"):
            kinds = kinds | {type(None)}
        return set(kinds), tuple(s.get("required") or ())

    def _point_id(self):
        """ExtendedPointId (u64 or uuid string), hot on every point: hand-written."""
        def point_id(v, path, errs):
            if type(v) is int:
                if 0 <= v <= MAX_U64:
                    return
            elif type(v) is str:
                if parse_uuid(v) is not None:
                    return
            e = point_id_error(v)
            e.mode = "after"            # serde buffers the id (custom deserialiser)
            raise e
        return point_id

    def _any_of(self, branches, name, prop):
        if name == "ExtendedPointId":
            return self._point_id()     # buffered too: its errors say mode "after"
        # {"nullable": true} branches only allow null
        allow_null = any(set(b) <= {"nullable", "description", "default"} and b.get("nullable")
                         for b in branches)
        real = [b for b in branches
                if not (set(b) <= {"nullable", "description", "default"})]
        if len(real) == 1 and allow_null:
            # serde's Option<T>: null or T, with T's own errors (not an untagged enum)
            inner = self._compile(real[0], name, prop)

            def option(v, path, errs):
                if v is not None:
                    inner(v, path, errs)
            return option
        compiled = [(self._compile(b, name),) + self._kinds(b) for b in real]
        # Qdrant's OneOrMany<X> (``must``, ``prefetch``…): X or a list of X, picked by the JSON
        # type, reports X's own errors
        one_or_many = (len(real) == 2 and real[1].get("type") == "array"
                       and real[1].get("items") == real[0])
        keep_inner = name in KEEP_INNER or one_or_many
        msg = UNTAGGED_MESSAGES.get(name) or (
            f"data did not match any variant of untagged enum {name or prop or 'value'}")

        by_type = {}

        def any_of(v, path, errs):
            if v is None and allow_null:
                return
            tv = type(v)
            cands = by_type.get(tv)
            if cands is None:
                cands = by_type[tv] = [c for c in compiled if c[1] is None or tv in c[1]]
            if tv is dict and len(cands) > 1:
                keyed = [c for c in cands if c[2] and all(r in v for r in c[2])]
                if len(keyed) == 1:
                    cands = keyed
            if len(cands) == 1 and keep_inner:
                cands[0][0](v, path, errs)   # the branch Qdrant's own code picks: its message
                return
            sticky = None
            for c in cands:
                local = []
                try:
                    c[0](v, path, local)
                except PointIdError as e:
                    sticky = e
                    continue
                except FormatError:
                    continue
                errs.extend(local)
                return
            if sticky is not None and keep_inner:
                raise sticky
            raise FormatError(msg)
        return self._buffered(any_of)

    @staticmethod
    def _buffered(fn):
        """serde reads the value into a buffer first (untagged enum, custom deserialiser): an
        error inside it surfaces where serde_json resumes, after the value (``after``)."""
        def buffered(v, path, errs):
            try:
                fn(v, path, errs)
            except FormatError as e:
                e.jpath = []
                e.mode = "after"
                raise
        return buffered

    def _typed(self, s, name):
        t = s.get("type")
        enum = s.get("enum")
        if enum is not None:
            allowed = set(enum)
            expected = _one_of(enum)

            def enum_fn(v, path, errs):
                if not isinstance(v, str) or v not in allowed:
                    if isinstance(v, str):
                        raise FormatError(f"unknown variant `{v}`, {expected}")
                    raise FormatError(f"invalid type: {_describe(v)}, {expected}",
                                      "start" if isinstance(v, (list, dict)) else "end")
            return enum_fn
        if t == "object" or (t is None and ("properties" in s or "required" in s)):
            return self._object(s, name)
        if t == "array":
            return self._array(s, name)
        if t == "integer":
            return self._integer(s, name)
        if t == "number":
            return self._number(s)
        if t == "string":
            return self._string(s)
        if t == "boolean":
            def bool_fn(v, path, errs):
                if not isinstance(v, bool):
                    raise FormatError(f"invalid type: {_describe(v)}, expected a boolean", _shape(v))
            return bool_fn

        def any_fn(v, path, errs):
            return None
        return any_fn

    def _range_checks(self, s, extra=None):
        s = dict(s, **(extra or {}))
        lo = s.get("minimum")
        hi = s.get("maximum")
        xlo = s.get("exclusiveMinimum")
        if xlo is True:  # OpenAPI 3.0 boolean form
            xlo, lo = lo, None
        return lo, hi, xlo

    def _integer(self, s, name, extra=None, nonzero=False):
        fmt = s.get("format")
        lo_fmt, hi_fmt = INT_FORMATS.get(fmt, (-(1 << 63), MAX_U64))
        tname = FORMAT_NAMES.get(fmt, "an integer")
        lo, hi, xlo = self._range_checks(s, extra)
        if lo == 0 and lo_fmt == 0:
            lo = None  # unsignedness is a shape property, already enforced by the format

        def int_fn(v, path, errs):
            if type(v) is not int:
                if isinstance(v, float) and not isinstance(v, bool):
                    raise FormatError(f"invalid type: floating point `{v!r}`, expected {tname}")
                raise FormatError(f"invalid type: {_describe(v)}, expected {tname}", _shape(v))
            if v < lo_fmt or v > hi_fmt:
                raise FormatError(f"invalid value: integer `{v}`, expected {tname}")
            if nonzero and v == 0:
                raise FormatError(f"invalid value: integer `0`, expected a nonzero {tname}")
            if (lo is not None and v < lo) or (hi is not None and v > hi) or \
                    (xlo is not None and v <= xlo):
                errs.append((path, _range_msg(v, lo if xlo is None else xlo, hi)))
        return int_fn

    def _number(self, s, extra=None):
        lo, hi, xlo = self._range_checks(s, extra)

        def num_fn(v, path, errs):
            if type(v) not in _NUM_TYPES:
                raise FormatError(f"invalid type: {_describe(v)}, expected f32", _shape(v))
            if (lo is not None and v < lo) or (hi is not None and v > hi) or \
                    (xlo is not None and v <= xlo):
                errs.append((path, _range_msg(v, lo if xlo is None else xlo, hi)))
        return num_fn

    def _string(self, s):
        fmt = s.get("format")
        lmin, lmax = s.get("minLength"), s.get("maxLength")

        def str_fn(v, path, errs):
            if not isinstance(v, str):
                raise FormatError(f"invalid type: {_describe(v)}, expected a string", _shape(v))
            if fmt == "uuid":
                if parse_uuid(v) is None:
                    raise FormatError(f"UUID parsing failed: invalid character: {v}")
            if (lmin is not None and len(v) < lmin) or (lmax is not None and len(v) > lmax):
                errs.append((path, _length_msg(json.dumps(v), lmin, lmax)))
        return str_fn

    def _array(self, s, name, item_msg=None):
        items = s.get("items") or {}
        imin, imax = s.get("minItems"), s.get("maxItems")
        numeric = (items.get("type") == "number" and "$ref" not in items
                   and not any(k in items for k in ("minimum", "maximum")))
        fast = self.fast

        def length(v, path, errs):
            if (imin is not None and len(v) < imin) or (imax is not None and len(v) > imax):
                errs.append((path, item_msg or _length_msg(None, imin, imax)))

        if numeric:
            def num_array(v, path, errs):
                if type(v) is not list:
                    raise FormatError(f"invalid type: {_describe(v)}, expected a sequence",
                                      _shape(v))
                if not fast and not set(map(type, v)) <= _NUM_TYPES:
                    for i, x in enumerate(v):
                        if type(x) not in _NUM_TYPES:
                            raise _within(FormatError(
                                f"invalid type: {_describe(x)}, expected f32", _shape(x)), i)
                length(v, path, errs)
            return num_array

        item_fn = self._compile(items, name)

        def array_fn(v, path, errs):
            if type(v) is not list:
                raise FormatError(f"invalid type: {_describe(v)}, expected a sequence",
                                  _shape(v))
            for i, x in enumerate(v):
                try:
                    item_fn(x, f"{path}[{i}]", errs)
                except FormatError as e:
                    raise _within(e, i)
            length(v, path, errs)
        return array_fn

    def _object(self, s, name):
        props = {}
        for k, ps in (s.get("properties") or {}).items():
            extra = EXTRA_CONSTRAINTS.get((name, k))
            if (extra or (name, k) in NONZERO) and ps.get("type") == "integer":
                props[k] = self._integer(ps, name, extra, nonzero=(name, k) in NONZERO)
            elif (name, k) in ITEM_MESSAGES and ps.get("type") == "array":
                props[k] = self._array(ps, None, ITEM_MESSAGES[(name, k)])
            else:
                props[k] = self._compile(ps, None, prop=k)
        required = list(s.get("required") or [])
        addl = s.get("additionalProperties", True)
        addl_fn = None
        if isinstance(addl, dict):
            addl_fn = self._compile(addl, name)
        closed = addl is False
        expected = _one_of(list(props))
        extra_check = EXTRA_OBJECT_CHECKS.get(name)
        flat = FLATTENED.get(name)
        if not props and not required and addl_fn is None and not closed and not extra_check:
            def free_obj(v, path, errs):     # e.g. Payload: any JSON object
                if type(v) is not dict:
                    raise FormatError(f"invalid type: {_describe(v)}, expected a map", _shape(v))
            return free_obj

        def members(v, path, errs):
            for r in required:
                if r not in v:
                    raise FormatError(f"missing field `{r}`")
            for k, x in v.items():
                fn = props.get(k)
                try:
                    if fn is not None:
                        fn(x, _join(path, k), errs)
                    elif closed:
                        raise FormatError(f"unknown field `{k}`, {expected}", "key")
                    elif addl_fn is not None:   # map entries: the validator crate prints "?"
                        addl_fn(x, _join(path, "?"), errs)
                except FormatError as e:
                    raise _within(e, k)
            if extra_check is not None:
                extra_check(v, path, errs)

        def obj_fn(v, path, errs):
            if type(v) is not dict:
                raise FormatError(f"invalid type: {_describe(v)}, expected struct {name or 'map'}"
                                  if name else f"invalid type: {_describe(v)}, expected a map",
                                  _shape(v))
            if flat is None:
                return members(v, path, errs)
            try:
                members(v, _join(path, flat), errs)
            except FormatError as e:     # buffered entries: reported at the struct's end
                e.jpath = []
                e.mode = "end"
                raise
        return obj_fn


def _one_of(names):
    """serde's list of expected variants/fields."""
    if not names:
        return "there are no variants"
    if len(names) == 1:
        return f"expected `{names[0]}`"
    if len(names) == 2:
        return f"expected `{names[0]}` or `{names[1]}`"
    return "expected one of " + ", ".join(f"`{n}`" for n in names)


def _shape(v):
    """Where serde_json reports an invalid type: containers are only peeked at."""
    return "start" if isinstance(v, (list, dict)) else "end"


def _range_msg(v, lo, hi):
    if lo is not None and hi is not None:
        m = f"must be from {_num(lo)} to {_num(hi)}"
    elif lo is not None:
        m = f"must be {_num(lo)} or larger"
    else:
        m = f"must be {_num(hi)} or smaller"
    return f"value {_num(v)} invalid, {m}"


def _length_msg(shown, lo, hi):
    if lo is not None and hi is not None:
        m = f"must be from {lo} to {hi} characters"
    elif lo is not None:
        m = f"must be at least {lo} characters"
    else:
        m = f"must be at most {hi} characters"
    return f"value {shown} invalid, {m}" if shown is not None else m


def label_errors(errs):
    """Qdrant's ``label_errors``: ``Validation error in JSON body: [a: m1; b: m2]``."""
    return "Validation error in JSON body: [" + "; ".join(f"{p}: {m}" for p, m in errs) + "]"


# -- serde_json's error position ----------------------------------------------------------------
_WS = b" \t\n\r"


def _skip_ws(b, i):
    while i < len(b) and b[i] in _WS:
        i += 1
    return i


def _string_end(b, i):
    """``b[i]`` is an opening quote: the index after the closing one."""
    i += 1
    while b[i] != 0x22:
        i += 2 if b[i] == 0x5C else 1
    return i + 1


def _value_end(b, i):
    """``b[i]`` starts a (valid) JSON value: the index after it."""
    c = b[i]
    if c == 0x22:
        return _string_end(b, i)
    if c in b"{[":
        depth = 0
        while True:
            c = b[i]
            if c == 0x22:
                i = _string_end(b, i)
                continue
            if c in b"{[":
                depth += 1
            elif c in b"}]":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1
    while i < len(b) and b[i] not in b",]} \t\n\r":
        i += 1
    return i


def _locate(b, jpath):
    """(start, end, closer of the parent container, end of the key) of the value at ``jpath``
    in the raw (valid) JSON ``b``; None when not found (duplicate keys, odd paths)."""
    i = _skip_ws(b, 0)
    closer, key_end = None, None
    for step in jpath:
        if i >= len(b) or b[i] not in b"{[":
            return None
        is_obj = b[i] == 0x7B
        closer = 0x7D if is_obj else 0x5D
        i = _skip_ws(b, i + 1)
        n = 0
        while True:
            if i >= len(b) or b[i] == closer:
                return None
            if is_obj:
                kend = _string_end(b, i)
                key = json.loads(b[i:kend])
                i = _skip_ws(b, _skip_ws(b, kend) + 1)     # past ':'
                hit = key == step
            else:
                kend, hit = None, n == step
            if hit:
                key_end = kend
                break
            i = _skip_ws(b, _value_end(b, i))
            if i < len(b) and b[i] == 0x2C:
                i = _skip_ws(b, i + 1)
            n += 1
    return i, _value_end(b, i), closer, key_end


def line_col(b, index):
    """serde_json's position after ``index`` bytes: (1-based line, bytes since its start)."""
    nl = b.rfind(b"\n", 0, index)
    return b.count(b"\n", 0, index) + 1, index - (nl + 1)


def error_position(raw, err):
    """serde_json's `` at line L column C`` for the FormatError ``err`` raised on body ``raw``
    ('' when serde_json gives none: an error inside a buffered root value)."""
    if not isinstance(err, FormatError) or (err.mode == "after" and not err.jpath):
        return ""
    try:
        found = _locate(raw, err.jpath)
    except (IndexError, ValueError):
        found = None
    if found is None:
        return ""
    start, end, closer, key_end = found
    if err.mode == "start":
        idx = start
    elif err.mode == "key":
        idx = key_end if key_end is not None else start
    elif err.mode == "after":
        idx = _skip_ws(raw, end)
        if idx < len(raw) and raw[idx] == closer:
            idx += 1
    else:
        idx = end
    line, col = line_col(raw, idx)
    return f" at line {line} column {col}"
