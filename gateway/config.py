"""The gateway's configuration: one TOML file read strictly into frozen models.

An unknown key is an error naming the key and its line. Secrets never come from the file's
text: they come from a secrets file it names, or from ``SUPEX_SECRET_<ID>`` variables.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import socket
import tomllib
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator
from stdnum.cn import uscc

from connectors.kinds import ConnectorKind, UnknownKindError, connector_kind
from gateway.encryption import DataCipher, load_key_ring
from gateway.exceptions import ConfigError
from mappings import CompiledMapping, builtin_mapping, compile_text
from mappings.definitions import key_line
from mappings.exceptions import MappingDefinitionError
from policy import Policy, PolicyDefinitionError, SharingRule, parse_duration
from policy.calendar import WorkingCalendar, parse_limit
from policy.exceptions import CalendarUnknownError
from policy.procedure import Obligation, ProcedureLimits, Terms
from policy.rules import known_record_types
from schemas.semantic import region_status

__all__ = [
    "AdminConfig",
    "AuditorConfig",
    "Config",
    "ConnectorConfig",
    "GatewayConfig",
    "load_config",
    "parse_size",
    "resolve_mapping",
]

_SIZE = re.compile(r"^\s*(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_UNITS = {None: 1, "B": 1, "KB": 1000, "KiB": 1024, "MB": 1000**2, "MiB": 1024**2, "GB": 1000**3, "GiB": 1024**3}


def parse_size(text: str | int) -> int:
    """Bytes from ``16MiB``, ``256KiB``, ``1000000``."""
    if isinstance(text, int):
        return text
    match = _SIZE.match(text)
    if not match:
        raise ValueError(f"不是大小 / not a size: {text!r} (e.g. 16MiB, 256KiB)")
    return int(match[1]) * _UNITS[match[2]]


class _Strict(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class GatewayConfig(_Strict):
    """The ``[gateway]`` table."""

    listen: str = "127.0.0.1:8440"
    store: str = "sqlite:///var/supex.db"
    log_hash: Literal["sm3", "sha256"] = "sm3"
    max_body: int = 16 * 1024**2
    max_records: int = Field(default=10_000, ge=1, le=100_000)
    read_timeout_seconds: float = Field(default=30.0, gt=0, le=600)  # a body must have come within this
    secrets_file: str | None = None
    data_key_env: str | None = None  # the variable holding the data key ring (base64 keys, the current first)
    data_key_file: str | None = None  # or a file holding it, one key a line
    clock_skew_seconds: int = Field(default=300, ge=1, le=3600)
    # processes that validate large batches beside the event loop; default: one per core but one
    prepare_processes: int | None = Field(default=None, ge=0, le=64)
    # push delivery: attempts (and age) after which a delivery moves to the dead letters
    delivery_attempts: int = Field(default=10, ge=1, le=1000)
    delivery_max_age: str = "3d"
    # how long a push delivery claimed by one gateway is left alone by the others sharing its
    # database (a gateway that dies holding claims has them taken over once this has passed)
    delivery_lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    # connections: a request's headers must have come within header_timeout_seconds of the
    # connection opening (or of the previous answer on it), a kept-alive connection is closed after
    # keepalive_timeout_seconds without a request, and one client address holds at most
    # max_connections_per_address connections at once
    header_timeout_seconds: float = Field(default=10.0, gt=0, le=600)
    keepalive_timeout_seconds: float = Field(default=15.0, gt=0, le=3600)
    max_connections_per_address: int = Field(default=128, ge=1, le=100_000)
    # knowingly serving with payloads in plaintext at rest, or with the published demonstration
    # secrets and tokens (docs/security.md): refused unless said here
    allow_plaintext_at_rest: bool = False
    allow_demo_secrets: bool = False
    # region codes beyond GB/T 2260 that records may carry (统计用区划代码 function zones): code → name
    extra_region_codes: dict[str, str] = Field(default_factory=dict)

    @field_validator("extra_region_codes")
    @classmethod
    def _extra_regions(cls, value: dict[str, str]) -> dict[str, str]:
        for code, name in value.items():
            if not re.fullmatch(r"\d{6}", code) or not name.strip():
                raise ValueError(f"区划代码应为 6 位数字 / extra_region_codes: {code!r} = {name!r} must be a "
                                 "six-digit code and its name")
            if (known := region_status(code)) is not None:
                raise ValueError(f"已是国家区划代码 / extra_region_codes: {code} is a GB/T 2260 code already "
                                 f"({known[0]})")
            if region_status(code[:4] + "00") is None:
                raise ValueError(f"所属市不是国家区划代码 / extra_region_codes: {code}: its city {code[:4]}00 is not "
                                 "a GB/T 2260 code")
        return value

    @field_validator("delivery_max_age")
    @classmethod
    def _age(cls, value: str) -> str:
        parse_duration(value)
        return value

    @property
    def instance(self) -> str:
        """This gateway among others on one database: its host and listening address, which one
        process at a time can hold, so that what a previous process here claimed is known to be its."""
        return f"{socket.gethostname()}:{self.listen}"

    @property
    def delivery_max_age_seconds(self) -> int:
        """``delivery_max_age`` in seconds."""
        return parse_duration(self.delivery_max_age)

    @field_validator("max_body", mode="before")
    @classmethod
    def _size(cls, value: str | int) -> int:
        return parse_size(value)

    @field_validator("store")
    @classmethod
    def _store(cls, value: str) -> str:
        scheme, separator, _ = value.partition("://")
        if separator and scheme not in ("sqlite", "postgresql", "postgres"):
            raise ValueError(f"不支持的存储 / store must be sqlite:///PATH, a file path or postgresql://…, got a "
                             f"{scheme}:// URL")
        if scheme == "sqlite" and not value.startswith("sqlite:///"):
            raise ValueError("a SQLite store is sqlite:///PATH (three slashes; four for an absolute path)")
        return value

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"监听地址应为 主机:端口 / listen must be host:port, got {value!r}")
        return value

    @property
    def preparers(self) -> int:
        """How many worker processes prepare large batches (0: all in the serving process)."""
        if self.prepare_processes is not None:
            return self.prepare_processes
        return max(0, (os.cpu_count() or 1) - 1)

    @property
    def host(self) -> str:
        """The address to bind."""
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        """The port to bind."""
        return int(self.listen.rpartition(":")[2])


class _Token(_Strict):
    name: str = Field(min_length=1, max_length=80)
    token_sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")


class AuditorConfig(_Token):
    """A security reviewer (审计员): reads the exchange log, never payloads."""


class AdminConfig(_Token):
    """An administrator: manages connectors and rules, never reads payloads."""


class ConnectorConfig(_Strict):
    """A registered system: who it is, what it produces and consumes, and how."""

    id: str = Field(pattern=r"^[a-z0-9-]{2,40}$")
    name: str
    kind: str = "http_json"  # a module of connectors.kinds
    department_code: str = Field(pattern=r"^[0-9A-HJ-NPQRTUWXY]{18}$")
    region_code: str = Field(pattern=r"^[0-9]{6}$")
    produces: list[str] = Field(default_factory=list)
    consumes: list[str] = Field(default_factory=list)
    delivery: Literal["pull", "push"] = "pull"
    endpoint: str | None = None
    mapping: str | None = None
    identifiers: Literal["strict", "lenient"] = "strict"
    system_of_record: bool = False
    receive_own: bool = True  # whether its subscriptions include the records it produced itself
    watch_dir: str | None = None  # file sources: the folder watched for dropped files
    watch_every: str = "2s"
    max_file: int = 256 * 1024**2
    poll_url: str | None = None  # polled sources: the system's API the gateway reads
    poll_every: str = "1m"
    poll_paging: Literal["cursor", "page", "offset", "link"] = "cursor"  # how the next page is asked for
    poll_cursor: str = "since"  # the query parameter that carries the cursor
    poll_page_param: str | None = None  # page: the page-number parameter ("page"); offset: the offset ("offset")
    poll_first_page: int = Field(default=1, ge=0)
    poll_size_param: str = "limit"  # the parameter that carries the page size (poll_limit)
    poll_next: str = "next"  # JSON path of the next cursor (cursor) or the next page's address (link)
    poll_total: str | None = None  # JSON path of the total the system reports, checked at the round's end
    poll_watermark_param: str | None = None  # incremental reads: the parameter that carries the watermark…
    poll_watermark_field: str | None = None  # …the largest value of this record field seen so far
    poll_limit: int = Field(default=500, ge=1, le=10_000)
    poll_max_pages: int = Field(default=100, ge=1)  # pages one round reads at most
    poll_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    enabled: bool = True
    max_requests_per_second: float | None = Field(default=None, gt=0)
    push_batch: int = Field(default=100, ge=1, le=10_000)  # records a push carries at most
    push_timeout_seconds: float = Field(default=10.0, gt=0, le=600)

    @field_validator("produces", "consumes")
    @classmethod
    def _types(cls, value: list[str]) -> list[str]:
        return known_record_types(value)

    @field_validator("department_code")
    @classmethod
    def _department(cls, value: str) -> str:
        if not uscc.is_valid(value):
            raise ValueError(f"统一社会信用代码校验位错误 / department_code {value!r} is not a valid unified social "
                             f"credit code (its check character should be {uscc.calc_check_digit(value[:-1])!r})")
        return value

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        try:
            connector_kind(value)
        except UnknownKindError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("watch_every", "poll_every")
    @classmethod
    def _every(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("max_file", mode="before")
    @classmethod
    def _file_size(cls, value: str | int) -> int:
        return parse_size(value)

    @model_validator(mode="after")
    def _transports(self) -> ConnectorConfig:
        if self.delivery == "push" and not self.endpoint:
            raise ValueError("delivery = \"push\" needs an endpoint")
        sources = self.preset.sources
        if self.watch_dir and "file" not in sources:
            raise ValueError(f"此类连接器不投放文件 / watch_dir: a {self.kind} connector does not drop files "
                             "(file_drop or double_random do)")
        if self.poll_url and "poll" not in sources:
            raise ValueError(f"此类连接器不能轮询 / poll_url: a {self.kind} connector cannot be polled")
        if (self.poll_watermark_param is None) != (self.poll_watermark_field is None):
            raise ValueError("poll_watermark_param and poll_watermark_field go together: the parameter sent, and "
                             "the record field whose largest value it carries")
        if self.poll_watermark_param and self.poll_paging == "cursor":
            raise ValueError("a watermark is for poll_paging = \"page\", \"offset\" or \"link\" (a cursor is "
                             "its own watermark)")
        if sources == {"file"} and not self.watch_dir:
            raise ValueError(f"缺少 watch_dir / kind = \"{self.kind}\" needs a watch_dir")
        return self

    @property
    def preset(self) -> ConnectorKind:
        """The connector's kind: its mappings, and how its records may be fetched."""
        return connector_kind(self.kind)

    @property
    def mapping_name(self) -> str | None:
        """The mapping the connector's own format goes through, if any."""
        return self.mapping or self.preset.mapping

    @property
    def region_prefix(self) -> str:
        """The region-code prefix of the connector's jurisdiction (province, city or county)."""
        code = self.region_code
        if code.endswith("0000"):
            return code[:2]
        if code.endswith("00"):
            return code[:4]
        return code


class WitnessConfig(_Strict):
    """A witness whose cosignatures of this log's checkpoints the gateway keeps and publishes."""

    name: str = Field(min_length=1, max_length=200)
    key: str = Field(min_length=1, max_length=500)  # its verifier key: name+id+base64(0x04 || Ed25519 key)


class LogConfig(_Strict):
    """``[log]``: the verifiable exchange log — its name, its signing key, how often it signs, how
    long archived entries stay in the store."""

    origin: str = Field(default="supex.local/exchange-log", pattern=r"^[^\s+]{1,200}$")
    key_file: str = "var/log-key"  # written by `supex keys create` (or by the gateway's first start)
    signature: Literal["ed25519", "sm2"] = "ed25519"  # the algorithm of the log key
    checkpoint_every_seconds: float = Field(default=5.0, ge=0.1, le=3600)
    # entries older than this may be pruned from the store by `supex log prune` once archived (unset: never)
    retain_days: int | None = Field(default=None, ge=0, le=36_500)
    witness: list[WitnessConfig] = Field(default_factory=list)


class CalendarYear(_Strict):
    """A ``[calendar.YEAR]`` table: that year's holidays and make-up workdays beyond (or, for a year
    the calendar package does not know yet, instead of) the official calendar's."""

    holidays: list[dt.date] = Field(default_factory=list)
    workdays: list[dt.date] = Field(default_factory=list)


class Config(_Strict):
    """The whole configuration, with the secrets and data keys resolved beside it (never from its text)."""

    model_config = ConfigDict(frozen=True, extra="forbid", arbitrary_types_allowed=True)

    gateway: GatewayConfig = Field(default_factory=GatewayConfig)
    auditor: list[AuditorConfig] = Field(default_factory=list)
    admin: list[AdminConfig] = Field(default_factory=list)
    connector: list[ConnectorConfig] = Field(default_factory=list)
    sharing: list[SharingRule] = Field(default_factory=list)
    procedure: ProcedureLimits = Field(default_factory=ProcedureLimits)
    log: LogConfig = Field(default_factory=LogConfig)
    obligation: list[Obligation] = Field(default_factory=list)
    timeliness: dict[str, str] = Field(default_factory=dict)  # record type -> the delay allowed after it occurred
    calendar: dict[str, CalendarYear] = Field(default_factory=dict)
    base_dir: Path = Field(default=Path(), exclude=True)
    secrets: Mapping[str, str] = Field(default_factory=dict, exclude=True, repr=False)
    secret_sources: Mapping[str, str] = Field(default_factory=dict, exclude=True)  # where each secret came from
    data_cipher: DataCipher | None = Field(default=None, exclude=True, repr=False)
    _terms: Terms | None = PrivateAttr(default=None)

    @field_validator("timeliness")
    @classmethod
    def _timeliness(cls, value: dict[str, str]) -> dict[str, str]:
        known_record_types(list(value))
        for limit in value.values():
            parse_limit(limit)
        return value

    @field_validator("calendar")
    @classmethod
    def _years(cls, value: dict[str, CalendarYear]) -> dict[str, CalendarYear]:
        for year in value:
            if not re.fullmatch(r"20\d\d", year):
                raise ValueError(f"日历年份应为四位数字 / calendar.{year}: a year such as 2027")
        WorkingCalendar.of({y: {"holidays": d.holidays, "workdays": d.workdays} for y, d in value.items()})
        return value

    @model_validator(mode="after")
    def _unique(self) -> Config:
        ids = [c.id for c in self.connector]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"连接器 id 重复 / duplicate connector ids: {duplicates}")
        try:
            self.policy()
        except PolicyDefinitionError as exc:
            raise ValueError(str(exc)) from None
        known = set(ids)
        named = [("procedure.coordinator", self.procedure.coordinator)]
        for obligation in self.obligation:
            named += [(f"obligation {obligation.id}.escalate_to", obligation.escalate_to)]
            named += [(f"obligation {obligation.id}.consumers", c) for c in obligation.consumers or ()]
        for where, connector in named:
            if connector is not None and connector not in known:
                raise ValueError(f"未知的连接器 / {where} names unknown connector {connector!r}")
        obligation_ids = [o.id for o in self.obligation]
        if len(set(obligation_ids)) != len(obligation_ids):
            raise ValueError(f"反馈义务编号重复 / duplicate obligation ids: {obligation_ids}")
        lease = self.gateway.delivery_lease_seconds
        too_slow = [c.id for c in self.connector if c.delivery == "push" and c.push_timeout_seconds >= lease]
        if too_slow:
            raise ValueError(f"投递租约过短 / delivery_lease_seconds ({lease:g}) must be longer than the "
                             "push_timeout_seconds of "
                             f"{too_slow}: a push must end before its claim runs out")
        return self

    def policy(self, runtime_rules: Mapping[str, Mapping[str, object]] | None = None,
               connector_states: Mapping[str, bool] | None = None) -> Policy:
        """The routing and sharing policy: the connectors (disabled or enabled again at run time as
        ``connector_states`` says), the file's rules, and rules changed at run time (which replace
        the file's rule of the same id)."""
        states = connector_states or {}
        connectors = [c.model_copy(update={"enabled": states[c.id]}) if c.id in states else c for c in self.connector]
        rules = {rule.id: rule for rule in self.sharing}
        for rule_id, body in (runtime_rules or {}).items():
            rules[rule_id] = SharingRule.model_validate(body)
        return Policy(connectors, rules.values(), self.terms)

    @property
    def terms(self) -> Terms:
        """The sharing procedure's terms: limits, feedback duties, timeliness, the working days."""
        if self._terms is None:  # built once: the calendar and the limits do not change
            years = {year: {"holidays": days.holidays, "workdays": days.workdays}
                     for year, days in self.calendar.items()}
            self._terms = Terms(self.procedure, self.obligation, self.timeliness, WorkingCalendar.of(years))
        return self._terms

    def connectors(self) -> dict[str, ConnectorConfig]:
        """The connectors by id."""
        return {c.id: c for c in self.connector}

    def key_path(self) -> Path:
        """Where the log key is (``[log] key_file``, relative to the configuration's folder)."""
        path = Path(self.log.key_file)
        return path if path.is_absolute() else self.base_dir / path

    def store_path(self) -> str:
        """Where the store is: a PostgreSQL URL as it is, or the SQLite file of ``store``, relative
        paths taken from the configuration's folder."""
        url = self.gateway.store
        if not url.startswith("sqlite:///"):
            return url
        path = Path(url.removeprefix("sqlite:///"))
        return str(path if path.is_absolute() else self.base_dir / path)


def resolve_mapping(name_or_path: str, base_dir: Path | None = None) -> CompiledMapping:
    """A mapping file by path (relative to ``base_dir``), or a built-in mapping by name."""
    path = Path(name_or_path)
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if path.suffix == ".toml" or path.exists():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise MappingDefinitionError(f"无法读取映射文件 / cannot read mapping file: {exc}",
                                         source=str(path)) from exc
        return compile_text(text, source=str(path))
    return builtin_mapping(name_or_path)


def _secret_env_name(connector_id: str) -> str:
    return "SUPEX_SECRET_" + connector_id.upper().replace("-", "_")


def _load_secrets(config: Config, environ: Mapping[str, str], only: Collection[str] | None) -> tuple[
    dict[str, str], dict[str, str]
]:
    """Each connector's secret and where it came from: ``SUPEX_SECRET_<ID>`` where the environment
    sets it (it overrides the file, as a deployment's environment overrides what is on disk), else
    the secrets file."""
    from_file: dict[str, object] = {}
    if config.gateway.secrets_file:
        path = config.base_dir / config.gateway.secrets_file
        try:
            from_file = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"无法读取密钥文件 / cannot read the secrets file {path}: {exc}") from exc
    secrets, sources = {}, {}
    for connector in config.connector:
        if only is not None and connector.id not in only:
            continue
        name = _secret_env_name(connector.id)
        value: object
        if name in environ:
            value, source = environ[name], name
        else:
            value, source = from_file.get(connector.id), f"secrets file {config.gateway.secrets_file}"
        if value is None or value == "":
            raise ConfigError(f"连接器 {connector.id} 没有密钥 / connector {connector.id!r} has no secret: set {name} "
                              "or add it to the secrets file")
        if not isinstance(value, str) or len(value) < 16:
            size = f"{len(value)} characters" if isinstance(value, str) else f"a {type(value).__name__}"
            raise ConfigError(f"连接器 {connector.id} 的密钥过短 / the secret of connector {connector.id!r} (from "
                              f"{source}) is {size}: it must be a string of at least 16 characters")
        secrets[connector.id], sources[connector.id] = value, source
    return secrets, sources


# what pydantic's most common complaints say, in both languages
_COMPLAINTS = {
    "missing": "缺少必填项 / is required",
    "string_type": "应为字符串 / must be a string",
    "int_type": "应为整数 / must be a whole number", "int_parsing": "应为整数 / must be a whole number",
    "float_type": "应为数值 / must be a number", "float_parsing": "应为数值 / must be a number",
    "bool_type": "应为 true 或 false / must be true or false",
    "bool_parsing": "应为 true 或 false / must be true or false",
    "list_type": "应为数组 / must be a list", "dict_type": "应为表 / must be a table",
}


def _described(error: Mapping[str, Any], raw: Mapping[str, Any]) -> str:
    """A configuration error as a person can act on it: where (``connector[3].kind``, and the
    connector's id), what is wrong, in Chinese and English, with the allowed values or bounds."""
    loc = tuple(error["loc"])
    where = "".join(f"[{p + 1}]" if isinstance(p, int) else (f".{p}" if i else str(p)) for i, p in enumerate(loc))
    if len(loc) >= 2 and isinstance(loc[1], int) and isinstance(raw.get(loc[0]), list):
        entry = raw[loc[0]][loc[1]] if loc[1] < len(raw[loc[0]]) else None
        if isinstance(entry, dict) and isinstance(entry.get("id"), str):
            where += f" (id {entry['id']!r})"
    kind, context, given = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "extra_forbidden":
        said = f"未知的键 / unknown key {loc[-1]!r}"
    elif kind == "literal_error":
        said = f"取值应为 {context.get('expected')} / must be one of {context.get('expected')}, not {given!r}"
    elif kind == "string_pattern_mismatch":
        said = f"格式不符 / {given!r} does not have the form {context.get('pattern')}"
    elif kind in ("greater_than_equal", "greater_than", "less_than_equal", "less_than"):
        bound = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}[kind]
        limit = next(iter(context.values()), "")
        said = f"超出范围 / {given!r} must be {bound} {limit}"
    elif kind == "value_error":
        said = str(context.get("error") or error["msg"]).removeprefix("Value error, ")
    else:
        said = _COMPLAINTS.get(kind, error["msg"])
    return f"{where}: {said}" if where else said


def load_config(path: str | Path, *, environ: Mapping[str, str] | None = None,
                need_secrets: bool = True, secrets_of: Collection[str] | None = None,
                now: dt.datetime | None = None) -> Config:
    """Read, check and complete a configuration file; raises ``ConfigError`` naming key and line.
    The secrets of every connector are required, or only of ``secrets_of`` where given. Every time
    limit counted from ``now`` (default: now) must end within the working-day calendar."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"无法读取配置文件 / cannot read the configuration {path}: {exc}") from exc
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: TOML 语法错误 / TOML syntax error: {exc}") from exc
    try:
        config = Config.model_validate({**raw, "base_dir": path.resolve().parent})
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = tuple(error["loc"])
        line = key_line(text, loc)
        prefix = f"{path}:{line}: " if line else f"{path}: "
        raise ConfigError(prefix + _described(error, raw)) from exc
    try:
        config.terms.check_calendar(now or dt.datetime.now(dt.UTC))
    except CalendarUnknownError as exc:
        raise ConfigError(f"{path}: {exc}") from exc
    if need_secrets:
        environ = os.environ if environ is None else environ
        gateway = config.gateway
        cipher = load_key_ring(gateway.data_key_env, config.base_dir / gateway.data_key_file
                               if gateway.data_key_file else None, environ)
        secrets, sources = _load_secrets(config, environ, secrets_of)
        config = config.model_copy(update={"secrets": secrets, "secret_sources": sources, "data_cipher": cipher})
    return config
