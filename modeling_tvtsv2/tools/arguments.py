"""The one place where command-line tools parse their arguments: `HfArgumentParser` over dataclasses.

Every tool (`tvtsv2 convert|export|eval|extract|search|prepare-videos`, `training/run_eval.py`,
`processing/*.py`) describes its arguments as a dataclass beside its logic (fields with `metadata={"help": ...}`,
`"choices"` where the values are a fixed set, no default where the argument is required) and parses them with
`parse_tool_arguments`. Pre-training (`modeling_tvtsv2.pretraining.arguments`) layers its defaults and recipes itself
but reads the typed flags with the same `typed_flags_parser` and its recipe files with the same
`load_argument_file`.

Rules (tested in `tests/test_tool_arguments.py`):

1. **Spelling.** A field `a_b` is the flag `--a_b` and `--a-b`; `--a_b=x` works. Abbreviations are off
   (`--max_step` is not `--max_steps`: argparse's prefix matching would silently accept a typo, and adding a flag
   could change what an old command line means). Extra spellings come from `metadata={"aliases": [...]}` (e.g.
   `--template` for `templates`).
2. **Switches.** A `bool` field defaulting to `False` is a switch: `--flag` alone means true, `--flag true|false`
   (yes/no, 1/0) also works. In a tool that takes positional arguments (`tvtsv2 search QUERY...`) a switch takes no
   value, so that it never swallows a positional. A `bool` field defaulting to `True` also gets `--no_flag`
   (help: "turn --flag off").
3. **Lists.** A `list[...]` field takes one or more values after its flag (`--extensions .mp4 .webm`); with
   `metadata={"repeatable": True}` it is given once per value instead (`--template "a {}" --template "the {}"`).
   `metadata={"positional": True}` makes a field positional; `metadata={"type": function}` converts the typed text
   (e.g. `none` to `None`).
4. **Argument files.** `--config FILE`, or a lone positional `FILE.json` / `FILE.yaml` / `FILE.yml` (conventionally
   first; tools with positional arguments of their own take `--config` only), gives argument values as a JSON or
   YAML object keyed by field name; keys starting with `_` are comments. `.yaml`/`.yml` files are read as YAML, any
   other as JSON. One file per run (the same file given both ways counts once). A string value is read as if typed
   after its flag (`"max_fps": "none"`); other values must have the field's type (`null` only where the field
   allows `None`); choices are checked as for typed values.
5. **Precedence.** Flags typed on the command line win over the file, the file wins over the dataclass defaults. A
   typed repeatable or list flag replaces the file's whole list. Which flags were typed is read from the parsed
   arguments of a parser whose defaults are all suppressed (`typed_flags_parser`), never from the raw text.
6. **Errors.** A user mistake (unknown flag, bad value, missing required argument, unreadable or unknown key in
   an argument file, a dataclass `__post_init__` refusing a value with `ValueError`) is one line on stderr,
   `error: ... (see PROG --help)`, and exit code 2, never a traceback. An unknown flag or choice close to a known
   one adds `(did you mean --max_steps?)`.
7. **Help.** `--help` lists every field with its `help` text, its default and `(required)` where it has none.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import difflib
import json
import re
import sys
import types
import typing
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from transformers import HfArgumentParser
from transformers.hf_argparser import string_to_bool

__all__ = [
    "ARGUMENT_FILE_SUFFIXES",
    "ArgumentFileError",
    "ToolArgumentParser",
    "argument_names",
    "load_argument_file",
    "parse_tool_arguments",
    "typed_flags",
    "typed_flags_parser",
    "unknown_arguments_message",
]

ARGUMENT_FILE_SUFFIXES = (".json", ".yaml", ".yml")
_YAML_SUFFIXES = (".yaml", ".yml")
# Destinations of the argument-file options (not field names: a field may not use them).
_CONFIG_DEST = "argument_file_flag"
_FILE_DEST = "argument_file"


class ArgumentFileError(ValueError):
    """An argument file that cannot be used (unreadable, not an object, unknown keys, bad values)."""


class ToolArgumentParser(HfArgumentParser):
    """`HfArgumentParser` with the extensions of rules 1-3 and 6 (module docstring): no abbreviations, positional,
    repeatable and custom-typed fields, switches that take no value next to positionals, one-line errors with a
    "did you mean" suggestion."""

    def __init__(self, dataclass_types: Any = None, **kwargs: Any):
        kwargs.setdefault("allow_abbrev", False)
        dataclass_types = _as_tuple(dataclass_types)
        # Read by `_parse_dataclass_field`, which `HfArgumentParser.__init__` calls.
        self.positional_fields = tuple(
            f.name for dtype in dataclass_types for f in dataclasses.fields(dtype) if f.metadata.get("positional")
        )
        super().__init__(dataclass_types, **kwargs)

    def _parse_dataclass_field(self, parser: Any, field: dataclasses.Field) -> None:
        metadata = dict(field.metadata)
        positional = metadata.pop("positional", False)
        repeatable = metadata.pop("repeatable", False)
        convert = metadata.pop("type", None)
        if positional:
            self._add_positional(parser, field, metadata, convert)
            return
        if self.positional_fields and field.type is bool and field.default is False:
            self._add_switch(parser, field, metadata)
            return
        if repeatable:
            metadata["action"] = "append"
        if metadata != dict(field.metadata):
            field = copy.copy(field)
            field.metadata = types.MappingProxyType(metadata)
        HfArgumentParser._parse_dataclass_field(parser, field)
        action = self._option_string_actions[f"--{field.name}"]
        negation = self._option_string_actions.get(f"--no_{field.name}")
        if negation is not None and field.type in (bool, bool | None) and field.default is True:
            negation.help = f"turn --{field.name} off"  # HfArgumentParser repeats the field's help here
        if repeatable:
            action.nargs = None  # one value per occurrence, appended
        if convert is not None:
            action.type = convert

    @staticmethod
    def _add_positional(parser: Any, field: dataclasses.Field, metadata: dict[str, Any], convert: Any) -> None:
        hint = _without_none(field.type)
        is_list = typing.get_origin(hint) is list
        required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
        if is_list:
            nargs, element = ("+" if required else "*"), typing.get_args(hint)[0]
        else:
            nargs, element = (None if required else "?"), hint
        kwargs: dict[str, Any] = {"nargs": nargs, "type": convert or element, **metadata}
        if not required:
            kwargs["default"] = field.default_factory() if is_list else field.default
        parser.add_argument(field.name, **kwargs)

    @staticmethod
    def _add_switch(parser: Any, field: dataclasses.Field, metadata: dict[str, Any]) -> None:
        aliases = metadata.pop("aliases", [])
        options = [f"--{field.name}"] + ([f"--{field.name.replace('_', '-')}"] if "_" in field.name else [])
        options += [aliases] if isinstance(aliases, str) else list(aliases)
        parser.add_argument(*options, action="store_const", const=True, default=False, dest=field.name, **metadata)

    def error(self, message: str) -> typing.NoReturn:
        line = " ".join(str(message).split()) + self._suggestion(str(message))
        self.exit(2, f"error: {line} (see {self.prog} --help)\n")

    def _suggestion(self, message: str) -> str:
        """` (did you mean --max_steps?)` for an unknown flag or choice close to a known one, else ``."""
        if message.startswith("unrecognized arguments:"):
            known = [option for option in self._option_string_actions if option.startswith("--")]
            typed = [word.split("=", 1)[0] for word in message.split(":", 1)[1].split() if word.startswith("--")]
        else:
            choice = re.match(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)$", message.strip())
            if choice is None:
                return ""
            known, typed = re.findall(r"'([^']*)'", choice.group(3)), [choice.group(2)]
        suggestions = [
            match[0] for word in typed if (match := difflib.get_close_matches(word, known, n=1, cutoff=0.6))
        ]
        return f" (did you mean {', '.join(dict.fromkeys(suggestions))}?)" if suggestions else ""


def _as_tuple(dataclass_types: Any) -> tuple[type, ...]:
    if dataclass_types is None:
        return ()
    if dataclasses.is_dataclass(dataclass_types):
        return (dataclass_types,)
    return tuple(dataclass_types)


def _without_none(hint: Any) -> Any:
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        others = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        if len(others) == 1:
            return others[0]
    return hint


def _allows_none(hint: Any) -> bool:
    return typing.get_origin(hint) in (typing.Union, types.UnionType) and type(None) in typing.get_args(hint)


def _required_fields(dataclass_types: Any) -> set[str]:
    """The fields without a default (required unless an argument file gives them)."""
    return {
        f.name
        for dtype in _as_tuple(dataclass_types)
        for f in dataclasses.fields(dtype)
        if f.init and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    }


def argument_names(dataclass_types: Any) -> set[str]:
    """The field names of the dataclasses (the keys an argument file may hold)."""
    return {f.name for dtype in _as_tuple(dataclass_types) for f in dataclasses.fields(dtype) if f.init}


def typed_flags_parser(dataclass_types: Any, **parser_kwargs: Any) -> ToolArgumentParser:
    """The parser of the dataclasses with every default suppressed: parsing gives exactly the arguments typed.

    Nothing is required at this stage (an argument file may give it); `--help` shows each field's default, and
    `(required)` for fields without one."""
    parser = ToolArgumentParser(dataclass_types, **parser_kwargs)
    required = _required_fields(dataclass_types)
    for action in parser._actions:
        if action.dest == "help" or action.default is argparse.SUPPRESS:
            continue
        if action.help is not None:  # argparse formats help with %: a literal one is doubled
            if action.dest in required:
                action.help = f"{action.help} (required)"
            elif action.default is not None and not isinstance(action, argparse._StoreFalseAction):  # not --no_x
                action.help = f"{action.help} (default: {action.default})"
            action.help = action.help.replace("%", "%%")
        action.default = argparse.SUPPRESS
        action.required = False
        if not action.option_strings and action.nargs in ("+", None):
            action.nargs = "*" if action.nargs == "+" else "?"
    return parser


def typed_flags(parser: argparse.ArgumentParser, argv: Sequence[str]) -> dict[str, Any]:
    """The arguments typed in `argv`, by destination, parsed with a `typed_flags_parser`."""
    return vars(parser.parse_args(list(argv)))


def load_argument_file(path: str | Path, kind: str = "argument file") -> dict[str, Any]:
    """The values of a JSON (or, for `.yaml`/`.yml`, YAML) object of arguments, without its `_comment` keys.

    Raises `ArgumentFileError` with a one-line message starting with `f"{kind} {path}: "`."""
    path = Path(path)
    is_yaml = path.suffix.lower() in _YAML_SUFFIXES
    language = "YAML" if is_yaml else "JSON"
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ArgumentFileError(f"{kind} {path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ArgumentFileError(f"{kind} {path}: cannot be read ({error})") from None
    if is_yaml:
        import yaml

        try:
            values = yaml.safe_load(text)
        except yaml.YAMLError as error:
            raise ArgumentFileError(f"{kind} {path}: not valid YAML ({' '.join(str(error).split())})") from None
    else:
        try:
            values = json.loads(text)
        except json.JSONDecodeError as error:
            raise ArgumentFileError(f"{kind} {path}: not valid JSON ({error})") from None
    if not isinstance(values, dict):
        raise ArgumentFileError(f"{kind} {path}: expected a {language} object of argument values")
    return {key: value for key, value in values.items() if not str(key).startswith("_")}


def unknown_arguments_message(values: Iterable[str], known: set[str], source: str) -> str | None:
    """`None` when every key is a known field, else the one-line error naming the unknown keys."""
    unknown = sorted(str(key) for key in set(values) - known)
    if not unknown:
        return None
    hints = [f"{key} -> {key.replace('-', '_')}" for key in unknown if key.replace("-", "_") in known]
    hint = f" (keys are field names: {', '.join(hints)})" if hints else ""
    return f"{source}: unknown argument(s) {', '.join(unknown)}{hint}"


def _file_values(
    parser: argparse.ArgumentParser, dataclass_types: tuple[type, ...], values: dict[str, Any], source: str
) -> dict[str, Any]:
    """Check and convert an argument file's values (rule 4)."""
    actions = {action.dest: action for action in parser._actions}
    hints = {}
    for dtype in dataclass_types:
        hints.update(typing.get_type_hints(dtype))
    converted = {}
    for name, value in values.items():
        converted[name] = _file_value(name, value, hints[name], actions[name], source)
    return converted


def _file_value(name: str, value: Any, hint: Any, action: argparse.Action, source: str) -> Any:
    def fail(reason: str) -> ArgumentFileError:
        return ArgumentFileError(f"{source}: {name}: {reason}")

    if value is None:
        if _allows_none(hint):
            return None
        raise fail("null is not allowed")
    kind = _without_none(hint)
    if typing.get_origin(kind) is list:
        element = typing.get_args(kind)[0]
        items = value if isinstance(value, list) else [value]
        return [_file_scalar(item, element, action, fail) for item in items]
    return _file_scalar(value, kind, action, fail)


def _file_scalar(value: Any, kind: Any, action: argparse.Action, fail: Any) -> Any:
    convert = action.type if callable(action.type) and action.type is not str else None
    if convert is None and kind is bool:
        convert = string_to_bool  # a switch that takes no value on the command line
    if isinstance(value, str) and convert is not None:
        try:
            value = convert(value)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as error:
            raise fail(f"invalid value {value!r} ({' '.join(str(error).split())})") from None
    elif kind is bool:
        if not isinstance(value, bool):
            raise fail(f"expected true or false, got {value!r}")
    elif kind is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise fail(f"expected an integer, got {value!r}")
    elif kind is float and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise fail(f"expected a number, got {value!r}")
    elif kind is str and not isinstance(value, str):
        raise fail(f"expected a string, got {value!r}")
    if action.choices is not None and value not in action.choices:
        shown = ", ".join(map(repr, action.choices))
        raise fail(f"invalid choice: {value!r} (choose from {shown})")
    return value


def parse_tool_arguments(
    dataclass_types: Any,
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    description: str | None = None,
) -> tuple[Any, ...]:
    """Parse a tool's command line into instances of its dataclasses (in the order given), by the rules of the
    module docstring. A user mistake exits with status 2 and one `error: ...` line."""
    dataclass_types = _as_tuple(dataclass_types)
    parser = typed_flags_parser(dataclass_types, prog=prog, description=description)
    names = argument_names(dataclass_types)
    assert not names & {_CONFIG_DEST, _FILE_DEST}, "reserved argument names"
    parser.add_argument(
        "--config",
        dest=_CONFIG_DEST,
        metavar="FILE",
        default=argparse.SUPPRESS,
        help="a JSON or YAML object of argument values keyed by their snake_case names; flags typed on the "
        "command line override it",
    )
    if not parser.positional_fields:
        parser.add_argument(
            _FILE_DEST,
            nargs="?",
            metavar="ARGUMENT_FILE",
            default=argparse.SUPPRESS,
            help="a .json, .yaml or .yml argument file given first, the same as --config ARGUMENT_FILE",
        )
    typed = typed_flags(parser, sys.argv[1:] if argv is None else argv)
    leading, flagged = typed.pop(_FILE_DEST, None), typed.pop(_CONFIG_DEST, None)
    if leading is not None and Path(leading).suffix.lower() not in ARGUMENT_FILE_SUFFIXES:
        parser.error(f"unrecognized arguments: {leading} (an argument file ends in .json, .yaml or .yml)")
    if leading is not None and flagged is not None and leading != flagged:
        parser.error(f"two argument files given: {leading} and --config {flagged}")
    path = leading if leading is not None else flagged

    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = load_argument_file(path)
            message = unknown_arguments_message(values, names, f"argument file {path}")
            if message:
                raise ArgumentFileError(message)
            values = _file_values(parser, dataclass_types, values, f"argument file {path}")
        except ArgumentFileError as error:
            parser.error(str(error))
    values.update(typed)

    required = _required_fields(dataclass_types)
    missing = [
        action.option_strings[0] if action.option_strings else action.dest
        for action in parser._actions
        if action.dest in required and action.dest not in values
    ]
    if missing:
        parser.error(f"the following arguments are required: {', '.join(dict.fromkeys(missing))}")
    instances = []
    for dtype in dataclass_types:
        fields = {f.name for f in dataclasses.fields(dtype) if f.init}
        try:
            instances.append(dtype(**{name: value for name, value in values.items() if name in fields}))
        except (TypeError, ValueError) as error:
            parser.error(str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__)
    return tuple(instances)

