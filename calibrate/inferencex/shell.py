"""A small reader of the launch scripts' shell: enough to know which flags a run got.

The scripts set engine knobs with plain assignments inside `if [[ $TP -eq 8 ]]; then ... elif ...
else ... fi` on the run's environment (TP, CONC, ISL, OSL, EP_SIZE, DP_ATTENTION, ...), write engine
config files with here-documents, and start the server and the client with `\\`-continued commands.
`run(text, env)` walks the script once with the run's environment: branches whose condition it can
decide are taken or skipped; anything it cannot decide (an unknown variable, `case`, command
substitution) makes what is assigned there unknown (None), never guessed. It executes nothing.
"""
from __future__ import annotations

import ast
import operator
import re
from dataclasses import dataclass, field

_ASSIGN = re.compile(r"^(?:export\s+|local\s+)?([A-Za-z_]\w*)=(.*)$")
_EXPORT = re.compile(r"^export\s+([A-Za-z_]\w*)")   # the first name of an export (the scripts export one per line)
_HEREDOC = re.compile(r"<<-?\s*(['\"]?)(\w+)\1")
_VAR = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}|\$(\w+)")
_ARITH = re.compile(r"\$\(\((.+?)\)\)")
_NUM_OPS = {"-eq": operator.eq, "-ne": operator.ne, "-lt": operator.lt, "-le": operator.le, "-gt": operator.gt,
            "-ge": operator.ge}
_BIN = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.floordiv,
        ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod}
_CMP = {ast.Lt: operator.lt, ast.LtE: operator.le, ast.Gt: operator.gt, ast.GtE: operator.ge,
        ast.Eq: operator.eq, ast.NotEq: operator.ne}


@dataclass
class Walk:
    """What a script does under one environment. `certain` False = inside a branch not decided."""

    vars: dict[str, str | None]
    heredocs: list[tuple[str, bool]] = field(default_factory=list)
    commands: list[tuple[str, bool]] = field(default_factory=list)
    exported: set[str] = field(default_factory=set)   # names an `export` reached (in a taken or undecided branch)


def _arith_node(node, env):
    if isinstance(node, ast.Expression):
        return _arith_node(node.body, env)
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return node.value
    if isinstance(node, ast.Name):
        v = env.get(node.id)
        return int(v) if v is not None and re.fullmatch(r"-?\d+", v) else None
    if isinstance(node, ast.BinOp) and type(node.op) in _BIN:
        a, b = _arith_node(node.left, env), _arith_node(node.right, env)
        return None if a is None or b is None or (b == 0 and type(node.op) in (ast.Div, ast.FloorDiv, ast.Mod)) \
            else _BIN[type(node.op)](a, b)
    if isinstance(node, ast.Compare) and len(node.ops) == 1 and type(node.ops[0]) in _CMP:
        a, b = _arith_node(node.left, env), _arith_node(node.comparators[0], env)
        return None if a is None or b is None else int(_CMP[type(node.ops[0])](a, b))
    if isinstance(node, ast.IfExp):
        c = _arith_node(node.test, env)
        return None if c is None else _arith_node(node.body if c else node.orelse, env)
    return None


def arith(expr: str, env: dict[str, str | None]) -> int | None:
    """Bash integer arithmetic `$(( ... ))` over known variables (+ - * / % comparisons, a ? b : c)."""
    e = expr.replace("$", "").strip()
    m = re.fullmatch(r"(.+?)\?(.+?):(.+)", e)
    if m:   # a ? b : c -> b if a else c
        e = f"({m.group(2)}) if ({m.group(1)}) else ({m.group(3)})"
    try:
        return _arith_node(ast.parse(e, mode="eval"), env)
    except (SyntaxError, ValueError):
        return None


def expand(text: str, env: dict[str, str | None]) -> str | None:
    """`$VAR`, `${VAR}`, `${VAR:-default}` and `$(( ))` expanded; None if any is unknown."""
    if "$(" in text.replace("$((", ""):
        return None                                     # command substitution: not run
    unknown = False

    def ar(m: re.Match) -> str:
        nonlocal unknown
        v = arith(m.group(1), env)
        unknown |= v is None
        return "" if v is None else str(v)

    def var(m: re.Match) -> str:
        nonlocal unknown
        name = m.group(1) or m.group(3)
        v = env.get(name)
        if v is None and m.group(2) is not None and name not in env:
            v = m.group(2)
        unknown |= v is None
        return v or ""

    out = _VAR.sub(var, _ARITH.sub(ar, text))
    return None if unknown else out


def _atom(text: str, env) -> bool | None:
    parts = text.split()
    if len(parts) == 2 and parts[0] in ("-n", "-z"):
        v = expand(parts[1].strip("\"'"), env)
        return None if v is None else (bool(v) if parts[0] == "-n" else not v)
    if len(parts) != 3:
        return None
    a, op, b = (expand(p.strip("\"'"), env) for p in parts[0:1] + [parts[1]] + parts[2:3])
    if a is None or b is None:
        return None
    if op in ("==", "="):
        return a == b
    if op == "!=":
        return a != b
    if op in _NUM_OPS and re.fullmatch(r"-?\d+", a) and re.fullmatch(r"-?\d+", b):
        return _NUM_OPS[op](int(a), int(b))
    return None


def condition(text: str, env) -> bool | None:
    """`[[ a == b ]] || [[ $X -lt 4 && ... ]]`: an OR of ANDs of tests, three-valued."""
    t = re.sub(r"\[\[|\]\]|(?<!\S)\[(?!\S)|(?<!\S)\](?!\S)", " ", text)
    ors = []
    for disj in t.split("||"):
        ands = [_atom(a.strip(), env) for a in disj.split("&&")]
        ors.append(False if False in ands else (None if None in ands else True))
    return True if True in ors else (None if None in ors else False)


def _logical_lines(text: str) -> list[str]:
    """Bash's line continuation: a trailing backslash and its newline are removed, nothing added (so
    `A='x'\\<newline>'y'` is the one word `'x''y'`; a continued command keeps the spaces it wrote)."""
    out, buf = [], ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if buf or not line.lstrip().startswith("#"):
            if line.endswith("\\"):
                buf += line[:-1]
                continue
            out.append(buf + line)
            buf = ""
    if buf:
        out.append(buf)
    return out


def run(text: str, env: dict[str, str]) -> Walk:
    """Walk the script under `env` (the run's variables) and return what it assigns and runs."""
    walk = Walk(vars=dict(env))
    stack: list[list] = []          # [current branch: bool|None, any branch taken: bool|None]
    lines = _logical_lines(text)
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        i += 1
        active = [f[0] for f in stack]
        if False in active and not re.match(r"(if|elif|else|fi)\b", line):
            continue
        certain = None not in active
        if m := re.match(r"(if|elif)\s+(.*?);?\s*then\s*$", line):
            if m.group(1) == "if":
                c = condition(m.group(2), walk.vars) if False not in active else False
                stack.append([c, c])
            elif stack:
                taken = stack[-1][1]
                c = condition(m.group(2), walk.vars)
                cur = False if taken is True else (c if taken is False else (None if c is not False else False))
                stack[-1] = [cur, True if cur is True else (None if None in (taken, cur) else taken or cur)]
            continue
        if line == "else" and stack:
            taken = stack[-1][1]
            stack[-1] = [None if taken is None else not taken, True]
            continue
        if line.startswith("fi") and stack:
            stack.pop()
            continue
        if h := _HEREDOC.search(line):
            body, i = _heredoc(lines, i, h.group(2))
            walk.heredocs.append((body if h.group(1) else (expand(body, walk.vars) or _soft(body, walk.vars)),
                                  certain))
            continue
        if e := _EXPORT.match(line):
            walk.exported.add(e.group(1))
        if (m := _ASSIGN.match(line)) and _one_word(m.group(2)):
            value = word(m.group(2).strip(), walk.vars)
            walk.vars[m.group(1)] = value if certain else None
            continue
        walk.commands.append((_soft(line, walk.vars), certain))
    return walk


_SEGMENT = re.compile(r"'([^']*)'|\"((?:[^\"\\]|\\.)*)\"|([^'\"\s]+)")


def word(text: str, env: dict[str, str | None]) -> str | None:
    """One shell word with its quotes removed: adjacent quoted and bare pieces concatenate (`'{'"$A"'}'`),
    single-quoted pieces stay literal, the others are expanded (None if a variable is unknown). A value
    that is not one such word keeps the old reading: outer quotes stripped, then expanded."""
    pieces, pos = [], 0
    for m in _SEGMENT.finditer(text):
        if m.start() != pos:
            break
        pieces.append((m.group(1), m.group(2) if m.group(2) is not None else m.group(3)))
        pos = m.end()
    if pos != len(text) or not pieces:
        return expand(text.strip("\"'"), env)
    out = []
    for literal, other in pieces:
        v = literal if literal is not None else expand(other, env)
        if v is None:
            return None
        out.append(v)
    return "".join(out)


def _one_word(value: str) -> bool:
    v = value.strip()
    return v.startswith(("$((", '"', "'")) or " " not in v


def _soft(body: str, env) -> str:
    """A here-document with some unknown variables: known ones expanded, unknown ones as `?`."""
    def var(m: re.Match) -> str:
        name = m.group(1) or m.group(3)
        return env.get(name) or (m.group(2) if m.group(2) is not None and name not in env else "?")

    return _VAR.sub(var, _ARITH.sub(
        lambda m: str(arith(m.group(1), env)) if arith(m.group(1), env) is not None else "?", body))


def _heredoc(lines: list[str], i: int, end: str) -> tuple[str, int]:
    body = []
    while i < len(lines) and lines[i].strip() != end:
        body.append(lines[i])
        i += 1
    return "\n".join(body), i + 1
