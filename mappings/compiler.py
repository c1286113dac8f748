"""Compile a mapping definition once into plain functions: source record → standard record,
and back where the mapping is reversible.

Each rule becomes a chain of small closures; nothing is interpreted per record. A record's
value errors are collected, not raised, so that all of them are reported together.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final

from lxml import etree

from mappings import transforms
from mappings.assembly import assemble
from mappings.definitions import Condition, FieldRules, MappingFile, Rule
from mappings.exceptions import MappingDefinitionError, ValueMappingError
from schemas import Issue, SchemaSet, load_schema_set
from schemas.issues import issue, pointer

__all__ = ["MISSING", "CompiledMapping", "compile_mapping"]

MISSING: Final = object()
Getter = Callable[[Any], Any]
Step = Callable[[Any], Any]
_WILDCARD = "[*]"


# ---- reading source values -------------------------------------------------------------

def _dotted_getter(path: str) -> Getter:
    """A reader for a dotted path in nested dicts; ``[*]`` collects over a list."""
    parts = tuple(p for p in re.split(r"\.|(?=\[\*\])", path) if p)

    def walk(value: Any, at: int) -> Any:
        for i in range(at, len(parts)):
            part = parts[i]
            if part == _WILDCARD:
                if not isinstance(value, list):
                    return None
                rest = [walk(item, i + 1) for item in value]
                return [r for r in rest if r is not None]
            if isinstance(value, dict):
                value = value.get(part)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                return None
        return value

    if len(parts) == 1:
        key = parts[0]
        return lambda row: row.get(key) if isinstance(row, dict) else None
    return lambda row: walk(row, 0)


def _column_getter(column: str) -> Getter:
    return lambda row: row.get(column)


def _xml_getter(path: str, namespaces: Mapping[str, str]) -> Getter:
    simple = re.fullmatch(r"(?:(\w+):)?([\w.-]+)", path)
    if simple:
        prefix, local = simple.groups()
        if prefix and prefix not in namespaces:
            raise MappingDefinitionError(f"未声明的命名空间前缀 / undeclared namespace prefix {prefix!r} in {path!r}")
        tag = f"{{{namespaces[prefix]}}}{local}" if prefix else local
        return lambda element: element.findtext(tag)
    try:
        xpath = etree.XPath(path, namespaces=dict(namespaces), smart_strings=False)
    except etree.XPathSyntaxError as exc:
        raise MappingDefinitionError(f"XPath 语法错误 / bad XPath {path!r}: {exc}") from None

    def get(element: Any) -> Any:
        found = xpath(element)
        if isinstance(found, list):
            if not found:
                return None
            found = found[0]
        return found.text if isinstance(found, etree._Element) else found

    return get


# ---- the transform chain ---------------------------------------------------------------

def _empty(value: Any) -> bool:
    return value is None or value in ("", [])


def _key(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class _Context:
    """What compiling one direction of one mapping needs to know."""

    def __init__(self, getter: Callable[[str], Getter], tables: Mapping[str, Mapping[str, str]],
                 schemas: SchemaSet, timezone: str) -> None:
        self.getter = getter
        self.tables = tables
        self.schemas = schemas
        self.tz = transforms.parse_timezone(timezone)

    def table(self, name: str, *, invert: bool = False) -> Mapping[str, str]:
        if name not in self.tables:
            raise MappingDefinitionError(f"未定义的对照表 / undefined table {name!r}")
        table = self.tables[name]
        if not invert:
            return table
        inverted: dict[str, str] = {}
        for key, value in table.items():
            inverted.setdefault(value, key)
        return inverted

    def code_table(self, name: str, *, by_label: bool) -> Mapping[str, str]:
        if name not in self.schemas.code_tables:
            raise MappingDefinitionError(f"未知的标准代码表 / unknown standard code table {name!r}")
        labels = self.schemas.code_tables[name].labels
        return {label: code for code, label in labels.items()} if by_label else labels


def _lookup(table: Mapping[str, str], name: str) -> Step:
    def step(value: Any) -> Any:
        key = _key(value)
        if key not in table:
            raise ValueMappingError(f"值 {key!r} 不在对照表 {name} 中 / value {key!r} is not in table {name}")
        return table[key]

    return step


def _conversion(rule: Rule, ctx: _Context) -> Step | None:
    tz = ctx.tz
    kind = rule.as_ or ("decimal" if rule.scale or rule.places is not None else None)
    if rule.format and kind not in ("datetime", "date"):
        raise MappingDefinitionError("format 只用于 as = \"datetime\" 或 \"date\" / format needs as = datetime or date")
    if kind is None:
        return None
    if kind in ("datetime", "date") and rule.format:
        pattern = rule.format
        return lambda v: transforms.format_time(v, pattern, tz)
    if kind == "decimal":
        try:
            scale = Decimal(rule.scale) if rule.scale else None
        except InvalidOperation:
            raise MappingDefinitionError(f"scale 不是数值 / scale is not a decimal: {rule.scale!r}") from None
        places = rule.places
        return lambda v: transforms.to_decimal(v, scale, places)
    simple: dict[str, Step] = {
        "string": _key,
        "int": transforms.to_int,
        "number": transforms.to_number,
        "bool": transforms.to_bool,
        "operation": transforms.to_operation,
        "datetime": lambda v: transforms.to_datetime(v, tz),
        "date": lambda v: transforms.to_date(v, tz),
    }
    return simple[kind]


def _value_steps(rule: Rule, ctx: _Context) -> list[Step]:
    steps: list[Step] = []
    if rule.lookup:
        steps.append(_lookup(ctx.table(rule.lookup, invert=rule.invert), rule.lookup))
    if rule.code_of:
        steps.append(_lookup(ctx.code_table(rule.code_of, by_label=True), rule.code_of))
    if rule.label_of:
        steps.append(_lookup(ctx.code_table(rule.label_of, by_label=False), rule.label_of))
    conversion = _conversion(rule, ctx)
    if conversion:
        steps.append(conversion)
    return steps


def _keep(value: Any) -> Any:
    return value


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _narrow(value: Any) -> Any:
    return transforms.halfwidth(value) if isinstance(value, str) else value


def _narrow_strip(value: Any) -> Any:
    return transforms.halfwidth(value).strip() if isinstance(value, str) else value


def _cleaner(rule: Rule) -> Step:
    return {(False, False): _keep, (True, False): _strip, (False, True): _narrow, (True, True): _narrow_strip}[
        (rule.trim, rule.halfwidth)
    ]


def _splitter(rule: Rule) -> Step | None:
    if rule.split is None:
        return None
    first, *others = [rule.split] if isinstance(rule.split, str) else rule.split
    index = rule.index

    def split(value: Any) -> Any:
        if isinstance(value, str):
            for other in others:  # short values: a few replaces beat a regular expression
                value = value.replace(other, first)
            items = [p.strip() for p in value.split(first)]
        else:  # already a list (a JSON source's array), or one value of another type
            items = value if isinstance(value, list) else [value]
        if index is None:
            return [p for p in items if p != ""]
        return items[index] if -len(items) <= index < len(items) else None

    return split


def _condition(cond: Condition, ctx: _Context) -> Callable[[Any], bool]:
    get = ctx.getter(cond.path)
    regex = re.compile(cond.matches) if cond.matches else None
    wanted = [_key(v) for v in cond.in_] if cond.in_ is not None else None

    def holds(source: Any) -> bool:
        value = get(source)
        value = value.strip() if isinstance(value, str) else value
        if cond.present is not None and cond.present == _empty(value):
            return False
        if cond.equals is not None and _key(value) != _key(cond.equals):
            return False
        if wanted is not None and _key(value) not in wanted:
            return False
        return not (regex and (value is None or not regex.fullmatch(str(value))))

    return holds


def _source(rule: Rule, ctx: _Context) -> Getter:
    """The rule's raw value before any transform."""
    if rule.from_ is not None:
        return ctx.getter(rule.from_)
    if "const" in rule.model_fields_set:
        const = rule.const
        return lambda _src: const
    if rule.zip is not None:
        return _zipper(rule, ctx)
    if rule.first is not None:
        options = [compile_rule(r, ctx) for r in rule.first]

        def first(src: Any) -> Any:
            for option in options:
                value = option(src)
                if value is not MISSING:
                    return value
            return None

        return first
    assert rule.parts is not None  # guaranteed by Rule._one_source
    parts = [compile_rule(r, ctx) for r in rule.parts]
    return lambda src: [("" if v is MISSING else _key(v)) for v in (p(src) for p in parts)]


def _zipper(rule: Rule, ctx: _Context) -> Getter:
    assert rule.zip is not None
    if rule.split is None:
        raise MappingDefinitionError("zip 需要 split / zip needs split (the list separator)")
    columns = [(name, ctx.getter(path), path) for name, path in rule.zip.items()]
    split = _splitter(rule.model_copy(update={"index": None}))
    clean = _cleaner(rule)
    assert split is not None

    names = [name for name, _, _ in columns]

    def zipped(src: Any) -> Any:
        lists = []
        for _name, get, _path in columns:
            value = clean(get(src))
            lists.append(split(value) if value else [])
        if any(len(items) != len(lists[0]) for items in lists):
            shown = ", ".join(f"{path}: {len(v)}" for (_, _, path), v in zip(columns, lists, strict=True))
            raise ValueMappingError(f"并列字段条目数不一致 / parallel lists differ in length ({shown})")
        return [dict(zip(names, row, strict=True)) for row in zip(*lists, strict=True)]

    return zipped


def compile_rule(rule: Rule, ctx: _Context) -> Getter:
    """One rule as a function of a source record, returning ``MISSING`` when it yields nothing."""
    get = _source(rule, ctx)
    holds = _condition(rule.when, ctx) if rule.when else None
    clean = _cleaner(rule)
    split = _splitter(rule) if rule.zip is None else None
    steps = _value_steps(rule, ctx)
    joiner = rule.join if rule.parts is None else None
    parts_join = rule.join if rule.parts is not None else None
    default = rule.default
    has_default = "default" in rule.model_fields_set

    if holds is None and joiner is None and parts_join is None and rule.zip is None and rule.first is None \
            and (split is None or rule.index is not None):
        return _scalar_rule(get, clean, split, _compose(steps), default if has_default else MISSING)

    def apply(value: Any) -> Any:
        for step in steps:
            value = step(value)
        return value

    def run(src: Any) -> Any:
        if holds is not None and not holds(src):
            return default if has_default else MISSING
        value = get(src)
        if parts_join is not None:
            value = parts_join.join(value)
        value = [clean(v) for v in value] if isinstance(value, list) else clean(value)
        if split is not None:
            value = split(value)
        if isinstance(value, list):
            value = [apply(v) for v in value if not _empty(v)]
            if joiner is not None:
                value = joiner.join(_key(v) for v in value)
        elif not _empty(value):
            value = apply(value)
        if _empty(value):
            return default if has_default else MISSING
        return value

    return run


def _compose(steps: list[Step]) -> Step | None:
    if len(steps) <= 1:
        return steps[0] if steps else None
    first, *rest = steps

    def chain(value: Any) -> Any:
        value = first(value)
        for step in rest:
            value = step(value)
        return value

    return chain


def _scalar_rule(get: Getter, clean: Step, pick: Step | None, step: Step | None, fallback: Any) -> Getter:
    """The common rule as one tight closure: a value read, cleaned, perhaps one split item
    picked, then converted. A text's result depends on that text alone and is immutable, so
    it is memoised: code tables, dates and operation codes repeat across a batch."""

    def convert(value: Any) -> Any:
        if pick is not None:
            value = pick(clean(value))
        if isinstance(value, list):
            value = [v for v in (clean(v) for v in value) if not _empty(v)]
            if step is not None:
                value = [step(v) for v in value]
        else:
            value = clean(value)
            if value is None or value == "":
                return fallback
            if step is not None:
                value = step(value)
        return fallback if _empty(value) else value

    if pick is None and step is None:
        return lambda src: convert(get(src))
    convert_text = lru_cache(maxsize=4096)(convert)

    def run(src: Any) -> Any:
        value = get(src)
        return convert_text(value) if isinstance(value, str) else convert(value)

    return run


def _normalise(rules: str | Rule | list[Rule]) -> Rule:
    if isinstance(rules, str):
        return Rule.model_validate({"from": rules})
    if isinstance(rules, list):
        return Rule.model_validate({"first": rules})
    return rules


def _compile_fields(fields: FieldRules, ctx: _Context) -> list[tuple[str, Rule, Getter]]:
    compiled = []
    for target, rules in fields.items():
        rule = _normalise(rules)
        try:
            compiled.append((target, rule, compile_rule(rule, ctx)))
        except MappingDefinitionError as exc:
            raise MappingDefinitionError(f"[{target}] {exc}") from None
    return compiled


def _inline_key(path: str) -> str | None:
    """A plain-Python read of a one-step key, for rules simple enough to be written inline."""
    return f"src.get({path!r})" if "." not in path and "[" not in path else None


class CompiledMapping:
    """A mapping compiled to functions: ``to_standard`` and, where reversible, ``from_standard``."""

    def __init__(self, definition: MappingFile, *, schemas: SchemaSet | None = None) -> None:
        header = definition.mapping
        self.definition = definition
        self.name = header.name
        self.record_type = header.record_type
        self.format = header.format
        self.options = definition.source
        self.reversible = header.reversible
        schemas = schemas or load_schema_set()
        if self.record_type not in schemas.types:
            known = ", ".join(schemas.record_types)
            raise MappingDefinitionError(f"未知的记录类型 / unknown record type {self.record_type!r} (known: {known})")
        namespaces = definition.source.namespaces
        forward_getter: Callable[[str], Getter] = {
            "json": _dotted_getter,
            "csv": _column_getter,
            "xml": lambda path: _xml_getter(path, namespaces),
        }[self.format]
        forward = _Context(forward_getter, definition.tables, schemas, header.timezone)
        self._forward_fields = _compile_fields(definition.fields, forward)
        self._forward = assemble(self._forward_fields, nested=True, base={"record_type": self.record_type},
                                 inline_read=self._source_read, error_path=lambda t: pointer(t.split(".")),
                                 missing=MISSING)
        self._reverse_fields: list[tuple[str, Rule, Getter]] = []
        if header.reversible:
            if not definition.reverse:
                raise MappingDefinitionError("reversible = true 需要 [reverse] / a reversible mapping needs [reverse]")
            backward = _Context(_dotted_getter, definition.tables, schemas, header.timezone)
            self._reverse_fields = _compile_fields(definition.reverse, backward)
            self._reverse = assemble(self._reverse_fields, nested=self.format == "json", base={},
                                     inline_read=_inline_key, error_path=lambda t: "/" + t, missing=MISSING)
            if self.format == "xml":
                self._xml_tags = {name: self._clark(name) for name, _, _ in self._reverse_fields}

    def _source_read(self, path: str) -> str | None:
        if self.format != "xml":
            return _inline_key(path) if self.format == "json" else f"src.get({path!r})"
        simple = re.fullmatch(r"(?:(\w+):)?([\w.-]+)", path)
        if not simple:
            return None
        prefix, local = simple.groups()
        namespace = self.options.namespaces.get(prefix or "")
        tag = f"{{{namespace}}}{local}" if prefix and namespace else local
        return f"src.findtext({tag!r})"

    def _clark(self, name: str) -> str:
        prefix, _, local = name.rpartition(":")
        if not prefix:
            return local
        if prefix not in self.options.namespaces:
            raise MappingDefinitionError(f"未声明的命名空间前缀 / undeclared namespace prefix {prefix!r}")
        return f"{{{self.options.namespaces[prefix]}}}{local}"

    def to_standard(self, source: Any) -> tuple[dict[str, Any], list[Issue]]:
        """Map one source record; returns the (possibly partial) standard record and its issues."""
        if self.format != "xml" and not isinstance(source, dict):
            return {"record_type": self.record_type}, [issue("", "not_object")]
        return self._forward(source)

    def from_standard(self, record: Mapping[str, Any]) -> tuple[Any, list[Issue]]:
        """Map a standard record back to the source format (a dict, or an lxml element for XML)."""
        if not self.reversible:
            raise MappingDefinitionError(f"映射 {self.name} 不可逆 / mapping {self.name} is not reversible")
        if not isinstance(record, dict):
            return {}, [issue("", "not_object")]
        row, problems = self._reverse(record)
        if self.format != "xml":
            return row, problems
        element = etree.Element(self.record_tag, nsmap=self.nsmap)
        for name, value in row.items():
            etree.SubElement(element, self._xml_tags[name]).text = _key(value)
        return element, problems

    @property
    def reverse_columns(self) -> list[str]:
        """The source fields written by ``from_standard``, in order (CSV header, XML children)."""
        return [name for name, _, _ in self._reverse_fields]

    @property
    def record_tag(self) -> str:
        """The Clark-notation tag of one record element (XML mappings)."""
        return self._clark(self.options.record or "record")

    @property
    def root_tag(self) -> str:
        """The Clark-notation tag of the document's root element (XML mappings)."""
        return self._clark(self.options.root or "records")

    @property
    def nsmap(self) -> dict[str | None, str]:
        """The namespace map of written XML: the record's own namespace as the default."""
        names = self.options.namespaces
        prefixes = set((self.options.record or "").split(":")[:-1])
        return {(None if p in prefixes else p): uri for p, uri in names.items()}


def compile_mapping(definition: MappingFile, *, source: str = "", schemas: SchemaSet | None = None) -> CompiledMapping:
    """Compile a checked definition; raises ``MappingDefinitionError`` naming the bad rule."""
    try:
        return CompiledMapping(definition, schemas=schemas)
    except MappingDefinitionError as exc:
        if source and not exc.source:
            raise MappingDefinitionError(str(exc), source=source) from None
        raise
