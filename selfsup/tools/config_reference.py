"""The configuration reference (``docs/configuration.md``), generated from the configs and the schema.

Every key of ``configs/train.yaml``, ``configs/finetune.yaml`` and of every option of every config
group (``configs/GROUP/OPTION.yaml``), each with:

- its **type and range**: declared once, where :mod:`selfsup.schema` checks them: the signature
  of the component whose node holds the key (a node with a ``selfsup`` ``_target_``), or the
  models of :mod:`selfsup.schema` (:class:`~selfsup.schema.RunSchema`,
  :class:`~selfsup.schema.FinetuneSchema`); a key neither declares takes the type of the
  component argument that reads it through an interpolation (``size: ${data.view.size}``), else
  its YAML value's type, unchecked;
- its **default**: the value in that file;
- its **meaning**: the comment at the end of its line in the YAML (continued on the lines below,
  aligned with it), else the comment block directly above it. A key without one of its own:
  one that reads another key (``root: ${data.root}``) takes that key's comment; otherwise the
  same key's comment in the files it is layered on, the options its defaults list extends or
  selects and its group's default option (``data=digits`` documents the keys every data option
  shares; a ``_global_`` option: train.yaml's default options); last, a key that a component
  argument reads through an interpolation takes that argument's comment.

A key with no meaning from any of these raises :class:`MissingDescription`, naming every such
key: the documentation build (``docs/hooks/config_reference.py``) fails rather than publish an
undocumented key. Nothing here is a second copy of a description: each comes from the YAML.
"""

from __future__ import annotations

import collections.abc
import functools
import re
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import annotated_types as at
import yaml
from pydantic import AfterValidator, BaseModel

from selfsup import CONFIG_DIR

ENTRY = ("train.yaml", "finetune.yaml")  # the entry configs, before the groups
INTERPOLATION = re.compile(r"^\$\{([\w.]+)\}$")  # a value that is another key, `${data.root}`


class MissingDescription(ValueError):
    """Keys whose meaning no YAML comment gives."""


@dataclass(frozen=True)
class Key:
    """One key of one config file, as the reference lists it."""

    file: str  # relative to configs/, e.g. "loss/ntxent.yaml"
    key: str  # the dotted key in the composed config, e.g. "loss.temperature"
    path: str  # the dotted key inside the file, e.g. "temperature"
    type: str
    range: str
    default: str
    meaning: str


@dataclass(frozen=True)
class _Entry:
    file: str
    path: tuple[str, ...]  # keys inside the file, from its package
    key: str  # the dotted key in the composed config
    default: str
    comment: str
    node: str  # the dotted key of the mapping that holds it


@dataclass(frozen=True)
class ConfigFile:
    """One YAML file of ``configs/``: its package (where its keys land), header and keys."""

    name: str  # relative to configs/
    package: str  # dotted prefix of its keys in the composed config ("" for the root)
    header: str  # the comment block the file starts with
    entries: tuple[_Entry, ...]
    components: dict[str, str]  # the dotted key of each node with a `_target_` -> that target


def config_files(configs: Path = CONFIG_DIR) -> list[ConfigFile]:
    """The entry configs, then every option of every group (sorted by group, then option)."""
    paths = [configs / n for n in ENTRY] + sorted(
        p for p in configs.rglob("*.yaml") if p.relative_to(configs).as_posix() not in ENTRY
    )
    packages = _packages(configs, paths)
    return [_parse(configs, p, packages[p]) for p in paths]


def reference(configs: Path = CONFIG_DIR) -> list[Key]:
    """Every key of every file, with type, range, default and meaning; raises
    :class:`MissingDescription` listing the keys no comment describes."""
    files = {f.name: f for f in config_files(configs)}
    entries = {name: {e.key: e for e in f.entries} for name, f in files.items()}
    bases = {name: _bases(configs, name) for name in files}
    choices = _entry_choices(configs)
    # key -> the entries that read it through an interpolation (`size: ${data.view.size}`)
    readers: dict[str, list[tuple[str, _Entry]]] = {}
    for name, f in files.items():
        for e in f.entries:
            m = INTERPOLATION.match(e.default.strip("'\""))
            if m:
                readers.setdefault(m.group(1), []).append((name, e))
    for found in readers.values():  # train.py's readers before finetune.py's
        found.sort(key=lambda r: r[0] in ENTRY)

    def layered(name: str, key: str, get: Any, seen: frozenset[str] = frozenset()) -> Any:
        """``get(entry)`` in this file, else in the files it is layered on (its defaults list; for a
        `_global_` file also train.yaml's default options), the first that gives one."""
        e = entries[name].get(key)
        found = get(e) if e is not None else None
        for base in bases[name]:
            if found or base in seen or base not in entries:
                break
            found = layered(base, key, get, seen | {name})
        return found

    def comment(name: str, key: str) -> str:
        return layered(name, key, lambda e: e.comment) or ""

    def composed_comment(name: str, key: str) -> str:
        """``key``'s comment where the composition of ``name`` takes it from: this file and the files
        it is layered on, else the entry config (a top-level key) or its group's default option."""
        entry = "finetune.yaml" if name == "finetune.yaml" else "train.yaml"
        group = key.split(".")[0]
        owner = f"{group}/{choices[group]}.yaml" if choices.get(group) else entry
        return comment(name, key) or comment(owner, key) or comment(entry, key)

    def targets(name: str, e: _Entry, seen: frozenset[str] = frozenset()) -> tuple[str, ...]:
        """The node's component: in this file, else in a file this one is layered on."""
        if e.node in files[name].components:
            return (files[name].components[e.node],)
        for base in bases[name]:
            if base in files and base not in seen:
                found = targets(base, e, seen | {name})
                if found:
                    return found
        return ()

    keys, missing = [], []
    for name, f in files.items():
        for e in f.entries:
            meaning = e.comment
            m = INTERPOLATION.match(e.default.strip("'\""))
            if not meaning and m:
                source = composed_comment(name, m.group(1))
                meaning = f"from `{m.group(1)}`: {source}" if source else ""
            meaning = meaning or comment(name, e.key)
            if not meaning:
                meaning = next(
                    (f"read as `{r.key}`: {comment(n, r.key)}" for n, r in readers.get(e.key, []) if comment(n, r.key)),
                    "",
                )
            if not meaning:
                missing.append(f"configs/{name}: {e.key}")
            declared = _declared(e.key, targets(name, e), e.path[-1], name)
            for n, r in readers.get(e.key, []) if declared is None else []:
                declared = _declared(r.key, targets(n, r), r.path[-1], n)
                if declared is not None:
                    break
            typ, rng = describe(declared) if declared is not None else (_yaml_type(e.default), "")
            keys.append(Key(name, e.key, ".".join(e.path), typ, rng, e.default, meaning))
    if missing:
        raise MissingDescription(
            f"{len(missing)} config key(s) have no description (a comment at the end of the key's line, "
            "or directly above it, in the YAML):\n  " + "\n  ".join(missing)
        )
    return keys


def markdown(configs: Path = CONFIG_DIR) -> str:
    """The reference as Markdown: one section per entry config and per group, one table per file."""
    keys = reference(configs)
    by_file: dict[str, list[Key]] = {}
    for k in keys:
        by_file.setdefault(k.file, []).append(k)
    out: list[str] = []
    group = None
    for f in config_files(configs):
        top = f.name.split("/")[0] if "/" in f.name else None
        if top != group and top is not None:
            group = top
            out += [f"## {group} {{#{group}}}", ""]
        if top is None:
            title, anchor, level = f"`{f.name}`", f.name.removesuffix(".yaml"), "##"
        else:
            group_path, _, option = f.name.removesuffix(".yaml").rpartition("/")
            title, anchor, level = f"`{group_path}={option}`", f"{group_path}-{option}".replace("/", "-"), "###"
        where = f"`configs/{f.name}`" + (f", keys under `{f.package}`" if f.package else ", keys at the top level")
        parts = [f"`{k}`: `{t}`" for k, t in f.components.items()]
        where += f"; component{'s' if len(parts) > 1 else ''} {', '.join(parts)}" if parts else ""
        out += [f"{level} {title} {{#{anchor}}}", "", where + ("." if not f.header else f". {f.header}"), ""]
        rows = by_file.get(f.name, [])
        if not rows:
            out += ["No keys of its own" + (": the component takes no arguments." if parts else "."), ""]
            continue
        out += ["| key | type | range | default | meaning |", "|---|---|---|---|---|"]
        for k in rows:
            cells = [f"`{k.key}`", k.type, k.range or "—", f"`{k.default}`", k.meaning]
            out.append("| " + " | ".join(_cell(c) for c in cells) + " |")
        out.append("")
    return "\n".join(out)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


# ---- reading the YAML: keys, their values as written, their comments -------------------------


def _packages(configs: Path, paths: list[Path]) -> dict[Path, str]:
    """Where each file's keys land: `# @package _global_` at the root; an option of a nested group
    where the files that include it put it (`- /augment/preset@view: px8` in data: `data.view`;
    `- schedule@_here_: ...` in optim: `optim`); any other option under its group."""
    explicit = {p: _package_line(p) for p in paths}
    packages: dict[Path, str] = {}

    def package(p: Path) -> str:
        if p in packages:
            return packages[p]
        rel = p.relative_to(configs)
        if rel.as_posix() in ENTRY or explicit[p] == "_global_":
            packages[p] = ""
            return ""
        group = rel.parent.as_posix()
        packages[p] = group.replace("/", ".")
        for other in paths:
            if other == p or other.relative_to(configs).parent.as_posix() == group:
                continue
            for entry in _defaults(other):
                name, _, pkg = entry.partition("@")
                owner = other.relative_to(configs).parent.as_posix()
                target = name.lstrip("/") if name.startswith("/") else f"{owner}/{name}".lstrip("/")
                if target == group and pkg:
                    base = package(other)
                    packages[p] = base if pkg == "_here_" else f"{base}.{pkg}".lstrip(".")
                    return packages[p]
        return packages[p]

    return {p: package(p) for p in paths}


def _load(path: Path) -> Any:
    return _load_version(path, path.stat().st_mtime_ns) or {}


@functools.cache
def _load_version(path: Path, mtime_ns: int) -> Any:
    return yaml.safe_load(path.read_text())


def _package_line(path: Path) -> str | None:
    for line in path.read_text().splitlines():
        if line.startswith("# @package"):
            return line.split()[-1]
        if line.strip() and not line.startswith("#"):
            return None
    return None


def _defaults(path: Path) -> list[str]:
    """The group names of a file's defaults list (`/augment/preset@view`, `schedule@_here_`)."""
    data = _load(path)
    out = []
    for item in data.get("defaults", []) if isinstance(data, dict) else []:
        if isinstance(item, dict):
            out += [str(k).removeprefix("override ").strip() for k in item]
    return out


def _parse(configs: Path, path: Path, package: str) -> ConfigFile:
    text = path.read_text()
    lines = text.splitlines()
    header_end = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))
    header = [_header_line(line) for line in lines[:header_end] if not line.startswith("# @package")]
    root = yaml.compose(text)
    name = path.relative_to(configs).as_posix()
    entries: list[_Entry] = []
    if isinstance(root, yaml.MappingNode):
        entries = list(_walk(name, root, (), package, lines, header_end))
    components: dict[str, str] = {}

    def find(node: Any, key: str) -> None:
        if isinstance(node, dict):
            if isinstance(node.get("_target_"), str):
                components[key] = node["_target_"]
            for k, v in node.items():
                find(v, f"{key}.{k}".lstrip("."))

    find(yaml.safe_load(text), package)
    return ConfigFile(name, package, " ".join(header), tuple(entries), components)


def _bases(configs: Path, name: str) -> list[str]:
    """The files ``name`` is layered on, nearest first: its defaults list's options (an option of
    its own group it extends, `override /G: O`, `/G@pkg: O`) and, for a root-level (`_global_`)
    option, train.yaml and train.yaml's default option of every group it does not override; for
    any other option, last, its group's default option (``data=digits`` documents the keys every
    data option has; another option comments a key where it has something of its own to say)."""
    if name in ENTRY:
        return []  # the root: its keys are its own
    path = configs / name
    group = path.parent.relative_to(configs).as_posix()
    found: list[str] = []
    chosen: set[str] = set()
    data = _load(path)
    for item in data.get("defaults", []) if isinstance(data, dict) else []:
        if isinstance(item, str) and item != "_self_":
            found.append(f"{group}/{item}.yaml".lstrip("/"))
        elif isinstance(item, dict):
            for k, option in item.items():
                g = str(k).removeprefix("override ").strip().split("@")[0]
                g = g.lstrip("/") if g.startswith("/") else f"{group}/{g}".lstrip("/")
                chosen.add(g)
                if option is not None:
                    found.append(f"{g}/{option}.yaml")
    choices = _entry_choices(configs)
    if _package_line(path) == "_global_":
        found.append("train.yaml")
        found += [
            f"{g}/{o}.yaml" for g, o in choices.items() if g not in chosen and o is not None and f"{g}/{o}.yaml" != name
        ]
    elif choices.get(group) is not None and f"{group}/{choices[group]}.yaml" not in (name, *found):
        found.append(f"{group}/{choices[group]}.yaml")  # the default option documents the shared keys
    return found


def _entry_choices(configs: Path) -> dict[str, str | None]:
    """train.yaml's default option of each group."""
    data = _load(configs / "train.yaml")
    return {str(k): v for item in data["defaults"] if isinstance(item, dict) for k, v in item.items()}


def _header_line(line: str) -> str:
    """A line of a file's header comment; an indented one is a command, shown as code."""
    text = line[1:].removeprefix(" ")
    return f"`{text.strip()}`" if text.startswith(" ") else text.strip()


def _walk(
    name: str, node: yaml.MappingNode, path: tuple[str, ...], package: str, lines: list[str], header_end: int
) -> Iterator[_Entry]:
    here = ".".join(p for p in (package, *path) if p)
    for k, v in node.value:
        key = str(k.value)
        if not path and key == "defaults":
            continue
        if key.startswith("_") and key.endswith("_"):
            continue  # Hydra's own keys: the component is named in the section's heading
        if isinstance(v, yaml.MappingNode) and any(
            not (str(c.value).startswith("_") and str(c.value).endswith("_")) for c, _ in v.value
        ):
            yield from _walk(name, v, (*path, key), package, lines, header_end)
            continue
        full = ".".join(p for p in (here, key) if p)
        yield _Entry(
            file=name,
            path=(*path, key),
            key=full,
            default=_source(v, lines),
            comment=_comment(k, v, lines, header_end),
            node=here,
        )


def _source(v: yaml.Node, lines: list[str]) -> str:
    """The value as written (a block collection in flow style)."""
    if isinstance(v, yaml.ScalarNode) and v.start_mark.line == v.end_mark.line:
        return lines[v.start_mark.line][v.start_mark.column : v.end_mark.column]
    if isinstance(v, yaml.MappingNode) and not v.value and v.start_mark.line == v.end_mark.line:
        return lines[v.start_mark.line][v.start_mark.column : v.end_mark.column]
    if isinstance(v, yaml.CollectionNode) and v.flow_style and v.start_mark.line == v.end_mark.line:
        return lines[v.start_mark.line][v.start_mark.column : v.end_mark.column]
    value = yaml.safe_load(yaml.serialize(v))
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip()


def _comment(k: yaml.Node, v: yaml.Node, lines: list[str], header_end: int) -> str:
    """The key's end-of-line comment (with its continuation lines, aligned with it), else the
    comment block directly above the key at its indentation (never the file's header)."""
    line, col = k.start_mark.line, k.start_mark.column
    after = v.end_mark.column if v.end_mark.line == line else k.end_mark.column
    rest = lines[line][after:]
    at = re.search(r"(^|\s)#", rest)
    if at is not None:
        hash_col = after + at.end() - 1
        parts = [rest[at.end() :].strip()]
        for nxt in lines[line + 1 :]:
            if nxt[:hash_col].strip() or not nxt[hash_col:].startswith("#"):
                break
            parts.append(nxt[hash_col + 1 :].strip())
        return " ".join(parts)
    above: list[str] = []
    for i in range(line - 1, header_end - 1, -1):
        prev = lines[i]
        if not prev.strip().startswith("#") or len(prev) - len(prev.lstrip()) != col:
            break
        above.insert(0, prev.strip().lstrip("#").strip())
    return " ".join(above)


# ---- types and ranges, as selfsup.schema declares them -----------------------------------------


def _declared(key: str, targets: Sequence[str], param: str, file: str) -> Any:
    """The annotation that checks ``key``: the schema model's field, else the argument ``param`` of
    the first ``selfsup`` component among ``targets`` that declares it; None if neither does."""
    from selfsup.schema import FinetuneSchema, RunSchema

    model: Any = FinetuneSchema if file == "finetune.yaml" else RunSchema
    for part in key.split("."):
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            model = None
            break
        model = field.annotation if not field.metadata else typing.Annotated[(field.annotation, *field.metadata)]
    if model is not None and not (isinstance(model, type) and issubclass(model, BaseModel)):
        return model
    for target in targets:
        if target.startswith("selfsup."):
            # a subclass may forward an argument its parent constrains (`temperature: float` to `Positive`)
            anns = [a for a in _annotations(target).get(param, []) if a is not Any]
            constrained = [a for a in anns if typing.get_origin(a) is typing.Annotated]
            if constrained or anns:
                return (constrained or anns)[0]
    return None


@functools.cache
def _annotations(target: str) -> dict[str, list[Any]]:
    from selfsup.schema_check import component_annotations

    return component_annotations(target)[0]


def _yaml_type(default: str) -> str:
    if default == "???":
        return "required"
    if default.startswith("${"):
        return "interpolation"
    value = yaml.safe_load(default)
    return {bool: "bool", int: "int", float: "float", str: "str", list: "list", dict: "mapping"}.get(
        type(value), "null" if value is None else type(value).__name__
    )


def describe(annotation: Any) -> tuple[str, str]:
    """``(type, range)`` of an annotation in words: ``Annotated[float, Gt(0)]`` is ``("float", "> 0")``."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        typ, rng = describe(args[0])
        extra = [r for m in args[1:] for r in _constraint(m)]
        if typ.startswith("list of") and extra:
            sizes = [r for r in extra if r.startswith(("length", "at least"))]
            rest = [r for r in extra if r not in sizes]
            return typ, "; ".join([*sizes, *([rng] if rng else []), *rest])
        return typ, "; ".join([*([rng] if rng else []), *extra])
    if origin is Literal:
        kinds = list(dict.fromkeys("str" if isinstance(a, str) else type(a).__name__ for a in args))
        return " or ".join(kinds), ", ".join(dict.fromkeys(f"`{a}`" for a in args))
    if origin in (typing.Union, types.UnionType) and all(typing.get_origin(a) is Literal for a in args):
        return describe(Literal[tuple(dict.fromkeys(v for a in args for v in typing.get_args(a)))])
    if origin in (typing.Union, types.UnionType):
        parts = [describe(a) for a in args]
        typ = " or ".join(dict.fromkeys(one for t, _ in parts for one in t.split(" or ")))
        ranges = [f"{t} {r}" if len(parts) > 1 and not r.startswith("`") else r for t, r in parts if r]
        return typ, "; ".join(ranges)
    if origin is not None and isinstance(origin, type) and issubclass(origin, collections.abc.Mapping):
        return "mapping", ""
    if origin is not None and _is_sequence(origin):
        inner = [describe(a) for a in args if a is not Ellipsis] or [("any", "")]
        typ = f"list of {inner[0][0]}"
        return typ, f"each {inner[0][1]}" if inner[0][1] else ""
    if annotation is type(None) or annotation is None:
        return "null", ""
    if annotation is Any:
        return "any", ""
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return "mapping", ""
        return annotation.__name__, ""
    return str(annotation).replace("typing.", ""), ""


def _is_sequence(origin: Any) -> bool:
    return isinstance(origin, type) and issubclass(origin, collections.abc.Sequence) and origin is not str


def _constraint(m: Any) -> list[str]:
    if isinstance(m, at.Interval):
        return [_interval(m.gt, m.ge, m.lt, m.le)]
    if isinstance(m, at.Gt):
        return [f"> {m.gt}"]
    if isinstance(m, at.Ge):
        return [f"≥ {m.ge}"]
    if isinstance(m, at.Lt):
        return [f"< {m.lt}"]
    if isinstance(m, at.Le):
        return [f"≤ {m.le}"]
    if isinstance(m, at.Len):
        if m.max_length == m.min_length:
            return [f"length {m.min_length}"]
        return [f"length {m.min_length} to {m.max_length}" if m.max_length else f"at least {m.min_length} values"]
    if isinstance(m, at.MinLen):
        return [f"at least {m.min_length} value" + ("s" if m.min_length != 1 else "")]
    if isinstance(m, AfterValidator):
        doc = (m.func.__doc__ or "").strip().splitlines()
        return [doc[0][:1].lower() + doc[0][1:].rstrip(".")] if doc else []
    return []


def _interval(gt: Any, ge: Any, lt: Any, le: Any) -> str:
    low = f"({gt}" if gt is not None else f"[{ge}" if ge is not None else None
    high = f"{lt})" if lt is not None else f"{le}]" if le is not None else None
    if low and high:
        return f"{low}, {high}"
    if low:
        return f"> {gt}" if gt is not None else f"≥ {ge}"
    return f"< {lt}" if lt is not None else f"≤ {le}"
