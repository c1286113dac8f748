"""Compile a mapping definition once into plain functions: source record → standard record,
and back where the mapping is reversible.

Each rule becomes a chain of small closures; nothing is interpreted per record. A record's
value errors are collected, not raised, so that all of them are reported together.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any, Final

from lxml import etree

from mappings import transforms
from mappings.assembly import assemble
from mappings.definitions import Condition, FieldRules, MappingFile, Rule, key_line
from mappings.exceptions import ItemsMappingError, MappingDefinitionError, SourceFormatError, ValueMappingError
from schemas import Issue, SchemaSet, load_schema_set
from schemas.issues import issue, pointer
from schemas.regions import RegionNameError, code_of_name

__all__ = ["MISSING", "CompiledMapping", "compile_mapping", "default_rows", "dotted_value"]

MISSING: Final = object()
Getter = Callable[[Any], Any]
Step = Callable[[Any], Any]
_WILDCARD = "[*]"
_TABULAR = ("csv", "xlsx")


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


def dotted_value(value: Any, path: str) -> Any:
    """The value at a dotted path of nested dicts (``data.total``), ``None`` where there is none."""
    return _dotted_getter(path)(value)


def default_rows(document: Any) -> list[Any]:
    """The records of a JSON document read without ``[source] record``: an array's items, an
    object's ``records`` list, the list an object of one member holds; else the document itself."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        rows = document["records"] if "records" in document else (
            next(iter(document.values())) if len(document) == 1 else None)
        if isinstance(rows, list):
            return rows
    return [document]


def _json_items(path: str) -> Callable[[Any], list[Any]]:
    """The items of the JSON list at ``path``; one object (or value) there is a list of one."""
    get = _dotted_getter(path)

    def items(row: Any) -> list[Any]:
        value = get(row)
        if value is None:
            return []
        return value if isinstance(value, list) else [value]

    return items


def _column_getter(column: str) -> Getter:
    return lambda row: row.get(column)


_XPATH1_FUNCTIONS = frozenset({
    "last", "position", "count", "id", "local-name", "namespace-uri", "name", "string", "concat", "starts-with",
    "contains", "substring-before", "substring-after", "substring", "string-length", "normalize-space",
    "translate", "boolean", "not", "true", "false", "lang", "number", "sum", "floor", "ceiling", "round",
})
_NODE_TESTS = frozenset({"node", "text", "comment", "processing-instruction"})
_CALL = re.compile(r"(?<![\w.:$@-])([A-Za-z_][\w.-]*(?::[A-Za-z_][\w.-]*)?)\s*\(")
_LITERAL = re.compile(r"\"[^\"]*\"|'[^']*'")


def _check_xpath1(path: str) -> None:
    """Refuse a function XPath 1.0 does not have (``string-join``, ``fn:…``, extension functions)."""
    for name in _CALL.findall(_LITERAL.sub("''", path)):
        if name not in _XPATH1_FUNCTIONS and name not in _NODE_TESTS:
            raise MappingDefinitionError(
                f"{path!r}: {name}() 不是 XPath 1.0 函数 / {name}() is not an XPath 1.0 function (only XPath 1.0 "
                "is supported: concat(), normalize-space(), substring-before()…)")


def _xml_nodes(path: str, namespaces: Mapping[str, str]) -> Callable[[Any], list[Any]]:
    """Every node (or the one value) ``path`` selects relative to a record element."""
    simple = re.fullmatch(r"(?:(\w+):)?([\w.-]+)", path)
    if simple:
        prefix, local = simple.groups()
        if prefix and prefix not in namespaces:
            raise MappingDefinitionError(f"未声明的命名空间前缀 / undeclared namespace prefix {prefix!r} in {path!r}")
        tag = f"{{{namespaces[prefix]}}}{local}" if prefix else local
        return lambda element: element.findall(tag)
    _check_xpath1(path)
    try:
        xpath = etree.XPath(path, namespaces=dict(namespaces), smart_strings=False)
    except etree.XPathSyntaxError as exc:
        raise MappingDefinitionError(f"XPath 语法错误 / bad XPath {path!r}: {exc}") from exc

    def nodes(element: Any) -> list[Any]:
        try:
            found = xpath(element)
        except etree.XPathError as exc:
            raise ValueMappingError(f"XPath {path!r} 无法求值 / cannot be evaluated: {exc}") from exc
        if isinstance(found, list):
            return found
        return [found]

    return nodes


def _node_text(node: Any) -> Any:
    return (node.text or "") if isinstance(node, etree._Element) else node


def _xml_getter(path: str, namespaces: Mapping[str, str]) -> Getter:
    """The one value ``path`` selects; several nodes where one value is expected is an error, never
    the first of them."""
    nodes = _xml_nodes(path, namespaces)

    def get(element: Any) -> Any:
        found = nodes(element)
        if not found:
            return None
        if len(found) > 1:
            raise ValueMappingError(f"{path!r} 选中了 {len(found)} 个节点 / selects {len(found)} nodes where one "
                                    "value is expected: map them as a list with each, or select one ([1])")
        return _node_text(found[0])

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
                 schemas: SchemaSet, timezone: str, *, nodes: Callable[[str], Callable[[Any], list[Any]]] | None = None,
                 inline_read: Callable[[str], str | None] = lambda _path: None, xml: bool = False) -> None:
        self._getter = getter
        self.xml = xml
        self.nodes = nodes
        self.inline_read = inline_read
        self.tables = tables
        self.schemas = schemas
        self.tz = transforms.parse_timezone(timezone)
        self.paths: list[str] = []  # every source path the rules read, in order (a CSV's columns)

    def getter(self, path: str) -> Getter:
        """A reader of ``path``, noted among the paths the rules read."""
        self.paths.append(path)
        return self._getter(path)

    def within(self) -> _Context:
        """The context of a list rule's own rules: the same, with paths relative to each item."""
        inner = copy.copy(self)
        inner.paths = []
        return inner

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
    if rule.epoch is not None:
        epoch, as_date = rule.epoch, kind == "date"
        return lambda v: transforms.from_epoch(v, epoch, tz, date=as_date)
    if kind in ("datetime", "date") and rule.format:
        pattern = rule.format
        return lambda v: transforms.format_time(v, pattern, tz)
    if kind == "decimal":
        try:
            scale = Decimal(rule.scale) if rule.scale else None
        except InvalidOperation as exc:
            raise MappingDefinitionError(f"scale 不是数值 / scale is not a decimal: {rule.scale!r}") from exc
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


def _full_match(pattern: str) -> re.Pattern[str]:
    """``matches`` holds where the pattern matches the whole value. A pattern anchored at one end
    only (``^[0-9]{4}``) reads like a search and would match nothing: it is refused, not obeyed."""
    if pattern.startswith("^") != (pattern.endswith("$") and not pattern.endswith("\\$")):
        raise MappingDefinitionError(
            f"matches {pattern!r}: 匹配的是整个值 / matches tests the whole value, so a pattern anchored at one end "
            "only matches nothing it seems to: write it for the whole value (^[0-9]{4}.*) or drop ^ and $")
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise MappingDefinitionError(f"正则表达式错误 / bad regular expression {pattern!r}: {exc}") from exc


def _condition(cond: Condition, ctx: _Context) -> Callable[[Any], bool]:
    get = ctx.getter(cond.path)
    regex = _full_match(cond.matches) if cond.matches else None
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
    if rule.each is not None:
        values = _each_values(rule.each, ctx)
        return lambda src: [_node_text(n) for n in values(src)]
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


def _each_values(path: str, ctx: _Context) -> Callable[[Any], list[Any]]:
    """The repeated nodes (XML) or items (a JSON list; one object counts as a list of one) at ``path``."""
    if ctx.nodes is None:
        raise MappingDefinitionError("each 只用于 JSON 和 XML / each applies to JSON and XML sources")
    return ctx.nodes(path)


def _each_objects(rule: Rule, ctx: _Context) -> Getter:
    """``each`` with ``fields``: every node or item mapped to an object by its own rules, nested at
    any depth; the items' issues come back at their paths within the list."""
    assert rule.each is not None
    assert rule.fields is not None
    items = _each_values(rule.each, ctx)
    inner = ctx.within()
    compiled = _compile_fields(rule.fields, inner)
    build = assemble(compiled, nested=True, base={}, inline_read=inner.inline_read,
                     error_path=lambda t: pointer(t.split(".")), missing=MISSING)
    holds = _condition(rule.when, ctx) if rule.when else None
    fallback = rule.default if "default" in rule.model_fields_set else MISSING
    needs_object = not ctx.xml

    def run(src: Any) -> Any:
        if holds is not None and not holds(src):
            return fallback
        out, problems = [], []
        for n, item in enumerate(items(src)):
            if needs_object and not isinstance(item, dict):
                problems.append(issue(f"/{n}", "not_object"))
                continue
            made, issues = build(item)
            out.append(made)
            problems += [Issue(f"/{n}{p.path}", p.code, p.message) for p in issues]
        if problems:
            raise ItemsMappingError(problems)
        return out or fallback

    return run


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
    if rule.fields is not None:
        return _each_objects(rule, ctx)
    if rule.region_name is not None:
        return _region_rule(rule, ctx)
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


def _region_rule(rule: Rule, ctx: _Context) -> Getter:
    """The rule's value (a county's or city's name) as its GB/T 2260 code, within the province or
    city of ``region_name``; a name that is not exactly one region is an error, never a guess."""
    assert rule.region_name is not None
    name_of = compile_rule(rule.model_copy(update={"region_name": None}), ctx)
    where = rule.region_name
    within_of = compile_rule(Rule.model_validate({"from": where.within}), ctx) if where.within else None

    def run(src: Any) -> Any:
        name = name_of(src)
        if name is MISSING or not isinstance(name, str):
            return name
        within = where.within_code
        if within_of is not None:
            found = within_of(src)
            within = None if found is MISSING else _key(found)
        try:
            return _region_code(name, within)
        except RegionNameError as exc:
            raise ValueMappingError(str(exc)) from None

    return run


@lru_cache(maxsize=4096)
def _region_code(name: str, within: str | None) -> str:
    return code_of_name(name, within)


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


def _compile_fields(fields: FieldRules, ctx: _Context, section: str = "fields") -> list[tuple[str, Rule, Getter]]:
    compiled = []
    for target, rules in fields.items():
        rule = _normalise(rules)
        try:
            compiled.append((target, rule, compile_rule(rule, ctx)))
        except MappingDefinitionError as exc:
            raise MappingDefinitionError(f"[{target}] {exc.message}", loc=(section, target)) from None
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
        forward = self._forward_context(definition, schemas)
        self._forward_fields = _compile_fields(definition.fields, forward)
        self.columns = tuple(dict.fromkeys(forward.paths)) if self.format in _TABULAR else ()
        self._forward = assemble(self._forward_fields, nested=True, base={"record_type": self.record_type},
                                 inline_read=forward.inline_read, error_path=lambda t: pointer(t.split(".")),
                                 missing=MISSING)
        self._reverse_fields: list[tuple[str, Rule, Getter]] = []
        if header.reversible:
            if not definition.reverse:
                raise MappingDefinitionError("reversible = true 需要 [reverse] / a reversible mapping needs [reverse]")
            if self.format == "xlsx":
                raise MappingDefinitionError("xlsx 映射不可逆 / an xlsx mapping cannot be reversible (write CSV "
                                             "instead)")
            backward = _Context(_dotted_getter, definition.tables, schemas, header.timezone, inline_read=_inline_key)
            self._reverse_fields = _compile_fields(definition.reverse, backward, "reverse")
            self._reverse = assemble(self._reverse_fields, nested=self.format == "json", base={},
                                     inline_read=_inline_key, error_path=lambda t: "/" + t, missing=MISSING)
            if self.format == "xml":
                self._xml_tags = {name: self.clark(name) for name, _, _ in self._reverse_fields}
        if self.format == "xml":
            _ = self.record_path  # checked now, not at the first file

    def _forward_context(self, definition: MappingFile, schemas: SchemaSet) -> _Context:
        header = definition.mapping
        if self.format == "json":
            return _Context(_dotted_getter, definition.tables, schemas, header.timezone, nodes=_json_items,
                            inline_read=_inline_key)
        if self.format == "xml":
            namespaces = definition.source.namespaces
            # XML reads are never written inline: each must check that it selects one node only
            return _Context(lambda path: _xml_getter(path, namespaces), definition.tables, schemas, header.timezone,
                            nodes=lambda path: _xml_nodes(path, namespaces), xml=True)
        return _Context(_column_getter, definition.tables, schemas, header.timezone,
                        inline_read=lambda path: f"src.get({path!r})")

    def check_header(self, header: list[str]) -> None:
        """Refuse a table whose header does not hold every column the mapping reads, or holds one
        of them several times (unless read as ``名称#2``): one error for the file, naming the column."""
        present = set(header)
        for column in self.columns:
            if column in present:
                continue
            repeated = [h for h in header if h.startswith(column + "#") and h[len(column) + 1:].isdigit()]
            if repeated:
                raise SourceFormatError(
                    f"表头中 {column!r} 出现 {len(repeated)} 次 / the header holds {column!r} {len(repeated)} times: "
                    f"read one of them as {' or '.join(repr(r) for r in repeated)}, or name it by its group with "
                    "header_rows")
            shown = ", ".join(h for h in header if h) or "(none)"
            raise SourceFormatError(f"表头中没有映射的列 {column!r} / the mapped column {column!r} is not in the "
                                    f"header; the header has: {shown}")

    def clark(self, name: str) -> str:
        """A prefixed element name (``x:CF``) in Clark notation, by ``[source] namespaces``."""
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
        return self.record_path[-1]

    @property
    def record_path(self) -> tuple[str, ...]:
        """The Clark-notation tags from the outermost named element to the record element (XML
        mappings): ``record = "x:Body/x:Items/x:Item"``; a leading ``/`` starts at the root (``""``)."""
        path = self.options.record or "record"
        steps = path.strip("/").split("/")
        if any(not step for step in steps):
            raise MappingDefinitionError(f"[source] record {path!r}: 路径中有空步 / an empty step in the path")
        return ("",) * path.startswith("/") + tuple(self.clark(step) for step in steps)

    def records_of(self, document: Any, where: str) -> list[Any]:
        """The records of one JSON document at ``[source] record``; ``SourceFormatError`` if there are none."""
        path = self.options.record
        if path is None:
            return default_rows(document)
        value = dotted_value(document, path)
        if isinstance(value, list):
            return value
        found = "nothing" if value is None else f"a {type(value).__name__}"
        raise SourceFormatError(f"{where}: [source] record {path!r} 处没有记录列表 / holds no list of records "
                                f"(found {found})")

    def check_envelope(self, document: Any, where: str) -> None:
        """Refuse a page whose envelope says it failed (``code`` not 0), with the page's own message."""
        envelope = self.options.envelope
        assert envelope is not None
        value = dotted_value(document, envelope.path)
        wanted = [envelope.equals] if envelope.in_ is None else envelope.in_
        if value is not None and _key(value) in {_key(w) for w in wanted}:
            return
        said = dotted_value(document, envelope.message) if envelope.message else None
        raise SourceFormatError(f"{where}: 信封检查未通过 / the envelope check failed: {envelope.path} = {value!r}"
                                + (f", {envelope.message}: {said}" if said is not None else ""))

    @property
    def root_tag(self) -> str:
        """The Clark-notation tag of the document's root element (XML mappings)."""
        return self.clark(self.options.root or "records")

    @property
    def nsmap(self) -> dict[str | None, str]:
        """The namespace map of written XML: the record's own namespace as the default."""
        names = self.options.namespaces
        prefixes = set((self.options.record or "").rsplit("/", 1)[-1].split(":")[:-1])
        return {(None if p in prefixes else p): uri for p, uri in names.items()}


def compile_mapping(definition: MappingFile, *, source: str = "", text: str = "",
                    schemas: SchemaSet | None = None) -> CompiledMapping:
    """Compile a checked definition; raises ``MappingDefinitionError`` naming the bad rule (and,
    given the file's ``text``, its line)."""
    try:
        return CompiledMapping(definition, schemas=schemas)
    except MappingDefinitionError as exc:
        line = key_line(text, exc.loc) if text and exc.loc else None
        raise MappingDefinitionError(exc.message, source=source or exc.source, line=line or exc.line,
                                     loc=exc.loc) from None
