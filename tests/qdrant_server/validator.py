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

# Qdrant replaces serde's "did not match any variant" message for some untagged enums.
UNTAGGED_MESSAGES = {
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


# Struct-level validations Qdrant performs in code rather than in the schema.
EXTRA_OBJECT_CHECKS = {"SparseVector": _check_sparse}


class FormatError(Exception):
    """Shape error: the body does not deserialise (HTTP 400)."""


class PointIdError(FormatError):
    """An invalid point id: its message survives enclosing untagged enums, as in Qdrant."""


def point_id_error(value):
    """Qdrant's message for an invalid ExtendedPointId."""
    if isinstance(value, str):
        shown = value
    else:
        shown = json.dumps(value)
    return PointIdError(f"value {shown} is not a valid point ID, valid values are either an "
                       f"unsigned integer or a UUID")


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
        return "a sequence"
    return "a map"


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
                try:
                    uuid.UUID(v)
                    return
                except ValueError:
                    pass
            raise point_id_error(v)
        return point_id

    def _any_of(self, branches, name, prop):
        if name == "ExtendedPointId":
            return self._point_id()
        # {"nullable": true} branches only allow null
        allow_null = any(set(b) <= {"nullable", "description", "default"} and b.get("nullable")
                         for b in branches)
        real = [b for b in branches
                if not (set(b) <= {"nullable", "description", "default"})]
        compiled = [(self._compile(b, name),) + self._kinds(b) for b in real]
        is_point_id = name == "ExtendedPointId"
        generic_only = name in UNTAGGED_MESSAGES
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
            if len(cands) == 1 and not generic_only and not is_point_id:
                cands[0][0](v, path, errs)   # the only plausible branch: keep its message
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
            if is_point_id:
                raise point_id_error(v)
            if sticky is not None and name not in ("QueryInterface", "VectorInput"):
                raise sticky
            raise FormatError(msg)
        return any_of

    def _typed(self, s, name):
        t = s.get("type")
        enum = s.get("enum")
        if enum is not None:
            allowed = set(enum)
            expected = ", ".join(f"`{e}`" for e in enum)

            def enum_fn(v, path, errs):
                if not isinstance(v, str) or v not in allowed:
                    if isinstance(v, str):
                        raise FormatError(f"unknown variant `{v}`, expected one of {expected}")
                    raise FormatError(f"invalid type: {_describe(v)}, expected one of {expected}")
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
                    raise FormatError(f"invalid type: {_describe(v)}, expected a boolean")
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

    def _integer(self, s, name, extra=None):
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
                raise FormatError(f"invalid type: {_describe(v)}, expected {tname}")
            if v < lo_fmt or v > hi_fmt:
                raise FormatError(f"invalid value: integer `{v}`, expected {tname}")
            if (lo is not None and v < lo) or (hi is not None and v > hi) or \
                    (xlo is not None and v <= xlo):
                errs.append((path, _range_msg(v, lo if xlo is None else xlo, hi)))
        return int_fn

    def _number(self, s, extra=None):
        lo, hi, xlo = self._range_checks(s, extra)

        def num_fn(v, path, errs):
            if type(v) not in _NUM_TYPES:
                raise FormatError(f"invalid type: {_describe(v)}, expected f32")
            if (lo is not None and v < lo) or (hi is not None and v > hi) or \
                    (xlo is not None and v <= xlo):
                errs.append((path, _range_msg(v, lo if xlo is None else xlo, hi)))
        return num_fn

    def _string(self, s):
        fmt = s.get("format")
        lmin, lmax = s.get("minLength"), s.get("maxLength")

        def str_fn(v, path, errs):
            if not isinstance(v, str):
                raise FormatError(f"invalid type: {_describe(v)}, expected a string")
            if fmt == "uuid":
                try:
                    uuid.UUID(v)
                except ValueError:
                    raise FormatError(f"UUID parsing failed: invalid character: {v}")
            if (lmin is not None and len(v) < lmin) or (lmax is not None and len(v) > lmax):
                errs.append((path, _length_msg(json.dumps(v), lmin, lmax)))
        return str_fn

    def _array(self, s, name):
        items = s.get("items") or {}
        imin, imax = s.get("minItems"), s.get("maxItems")
        numeric = (items.get("type") == "number" and "$ref" not in items
                   and not any(k in items for k in ("minimum", "maximum")))
        fast = self.fast

        def length(v, path, errs):
            if (imin is not None and len(v) < imin) or (imax is not None and len(v) > imax):
                errs.append((path, _length_msg(None, imin, imax)))

        if numeric:
            def num_array(v, path, errs):
                if type(v) is not list:
                    raise FormatError(f"invalid type: {_describe(v)}, expected a sequence")
                if not fast and not set(map(type, v)) <= _NUM_TYPES:
                    for x in v:
                        if type(x) not in _NUM_TYPES:
                            raise FormatError(f"invalid type: {_describe(x)}, expected f32")
                length(v, path, errs)
            return num_array

        item_fn = self._compile(items, name)

        def array_fn(v, path, errs):
            if type(v) is not list:
                raise FormatError(f"invalid type: {_describe(v)}, expected a sequence")
            for i, x in enumerate(v):
                item_fn(x, f"{path}[{i}]", errs)
            length(v, path, errs)
        return array_fn

    def _object(self, s, name):
        props = {}
        for k, ps in (s.get("properties") or {}).items():
            extra = EXTRA_CONSTRAINTS.get((name, k))
            if extra and ps.get("type") == "integer":
                props[k] = self._integer(ps, name, extra)
            else:
                props[k] = self._compile(ps, None, prop=k)
        required = list(s.get("required") or [])
        addl = s.get("additionalProperties", True)
        addl_fn = None
        if isinstance(addl, dict):
            addl_fn = self._compile(addl, name)
        closed = addl is False
        expected = ", ".join(f"`{k}`" for k in props)
        extra_check = EXTRA_OBJECT_CHECKS.get(name)
        if not props and not required and addl_fn is None and not closed and not extra_check:
            def free_obj(v, path, errs):     # e.g. Payload: any JSON object
                if type(v) is not dict:
                    raise FormatError(f"invalid type: {_describe(v)}, expected a map")
            return free_obj

        def obj_fn(v, path, errs):
            if type(v) is not dict:
                raise FormatError(f"invalid type: {_describe(v)}, expected struct {name or 'map'}"
                                  if name else f"invalid type: {_describe(v)}, expected a map")
            for r in required:
                if r not in v:
                    raise FormatError(f"missing field `{r}`")
            for k, x in v.items():
                fn = props.get(k)
                if fn is not None:
                    fn(x, _join(path, k), errs)
                elif closed:
                    raise FormatError(f"unknown field `{k}`, expected one of {expected}")
                elif addl_fn is not None:
                    addl_fn(x, _join(path, k), errs)
            if extra_check is not None:
                extra_check(v, path, errs)
        return obj_fn


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
