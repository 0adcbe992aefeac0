"""The ``.wf`` parser: recursive descent over the token list, with a nesting limit.

Grammar (runkon-flow's, reference §1.3), with runkon's stricter rules: unknown options,
duplicate options, misplaced options and anything after the workflow's closing ``}`` are
errors; every error reads ``source:line:col: message``.
"""

from __future__ import annotations

import re
from typing import Any

from runkon.dsl._ast import (
    DEFAULT_GATE_TIMEOUT,
    QUALITY_GATE_TYPE,
    AgentRef,
    AlwaysNode,
    BoolInputCondition,
    CallNode,
    CallWorkflowNode,
    Condition,
    DoNode,
    DoWhileNode,
    ForEachNode,
    FrozenMap,
    GateNode,
    GateOptions,
    IfNode,
    InputDecl,
    OnFail,
    ParallelCall,
    ParallelNode,
    QualityGateConfig,
    ScriptNode,
    StaticGateOptions,
    StepMarkerCondition,
    StepRefGateOptions,
    UnlessNode,
    WhileNode,
    WorkflowDef,
    WorkflowNode,
)
from runkon.dsl._lexer import EOF, INT, NUMWORD, PUNCT, STRING, WORD, SourceMap, Token, describe
from runkon.dsl._lexer import tokenize as _tokenize
from runkon.dsl._options import DOTTED, Entry, OptionSet, Value, close_match, step_marker
from runkon.errors import DslSyntaxError

_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*")
MAX_NESTING = 64  # blocks inside blocks; far beyond any real workflow, far below the stack
MAX_VALUE_NESTING = 16  # lists/maps inside lists/maps

NODE_KEYWORDS = (
    "call",
    "if",
    "unless",
    "while",
    "do",
    "parallel",
    "gate",
    "always",
    "script",
    "foreach",
)
_NODE_LIST = ", ".join(NODE_KEYWORDS)
_INPUT_MODIFIERS = ("required", "boolean", "default", "description")
_META_KEYS = ("title", "description", "trigger", "targets", "group")

_CALL_KEYS = ("retries", "on_fail", "output", "with", "as", "plugin_dirs", "timeout", "max_turns")
_CALL_WORKFLOW_KEYS = ("retries", "on_fail", "as", "inputs")
_LOOP_KEYS = ("max_iterations", "stuck_after", "on_max_iter")
_DO_KEYS = ("output", "with")
_PARALLEL_KEYS = ("fail_fast", "min_success", "output", "with")
_PARALLEL_CALL_KEYS = ("output", "with", "if", "retries")
_GATE_KEYS = (
    "type",
    "prompt",
    "min_approvals",
    "mode",
    "timeout",
    "on_timeout",
    "as",
    "options",
    "select",
    "allow_none",
)
_QUALITY_GATE_KEYS = ("type", "source", "threshold", "on_fail", "as")
_SCRIPT_KEYS = ("run", "env", "timeout", "retries", "on_fail", "as")
_FOREACH_KEYS = (
    "over",
    "max_parallel",
    "workflow",
    "scope",
    "filter",
    "inputs",
    "ordered",
    "on_cycle",
    "on_child_fail",
)

_PARALLEL_CALL_MISPLACED = dict.fromkeys(
    ("on_fail", "as", "timeout", "plugin_dirs", "max_turns"),
    "a call inside 'parallel' takes only output, with, if and retries",
)
_GATE_MISPLACED = {
    key: f"{key!r} belongs to quality gates (gate quality_gate {{ ... }})"
    for key in ("source", "threshold", "on_fail")
}
_QUALITY_MISPLACED = {
    "options": "a quality gate decides by score and has no options: remove 'options'",
    "prompt": "quality gates decide by score, not by a person: remove 'prompt'",
    "timeout": "quality gates decide at once: remove 'timeout'",
    "on_timeout": "quality gates decide at once: remove 'on_timeout'",
    "min_approvals": "quality gates decide by score: remove 'min_approvals'",
    "mode": "quality gates decide by score: remove 'mode'",
    "select": "a quality gate decides by score and has no options: remove 'select'",
    "allow_none": "a quality gate decides by score and has no options: remove 'allow_none'",
}
_LOOP_ONLY = dict.fromkeys(
    _LOOP_KEYS,
    "plain 'do' blocks take only 'output' and 'with'; loop options need "
    "`do { ... } while step.marker`",
)


def parse_workflow(text: str, source: str = "<string>") -> WorkflowDef:
    """Parse the text of one ``.wf`` file into a :class:`WorkflowDef`.

    Args:
        text: the whole file.
        source: the name used in error messages and stored on the result.

    Raises:
        DslSyntaxError: the text is not a valid workflow; the error carries ``source``,
            ``line``, ``col`` and names what was expected and what was found.
    """
    return _Parser(text, source).parse_file()


class _Parser:
    def __init__(self, text: str, source: str) -> None:
        if text.startswith("\ufeff"):
            text = text[1:]  # columns then match what editors show
        self.sm = SourceMap(text, source)
        self.tokens = _tokenize(text, self.sm)
        self.pos = 0
        self.depth = 0

    # ----------------------------------------------------------------- token helpers

    def peek(self, ahead: int = 0) -> Token:
        index = self.pos + ahead
        if index < len(self.tokens):
            return self.tokens[index]
        return self.tokens[-1]

    def advance(self) -> Token:
        token = self.tokens[self.pos]
        if token.kind != EOF:
            self.pos += 1
        return token

    def at_punct(self, char: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == PUNCT and token.value == char

    def at_word(self, word: str, ahead: int = 0) -> bool:
        token = self.peek(ahead)
        return token.kind == WORD and token.value == word

    def error(
        self, token: Token, problem: str, *, expected: str | None = None, hint: str | None = None
    ) -> DslSyntaxError:
        return self.sm.error(
            token.offset, problem, expected=expected, found=describe(token), hint=hint
        )

    def expected(self, token: Token, what: str, hint: str | None = None) -> DslSyntaxError:
        return self.error(
            token, f"expected {what}, found {describe(token)}", expected=what, hint=hint
        )

    def expect_punct(self, char: str, context: str) -> Token:
        token = self.advance()
        if token.kind != PUNCT or token.value != char:
            raise self.expected(token, f"'{char}' {context}")
        return token

    def expect_word(self, what: str) -> Token:
        token = self.advance()
        if token.kind != WORD:
            raise self.expected(token, what)
        return token

    def loc(self, token: Token) -> dict[str, Any]:
        line, col = self.sm.position(token.offset)
        return {"line": line, "col": col}

    # ----------------------------------------------------------------- file and sections

    def parse_file(self) -> WorkflowDef:
        first = self.advance()
        if first.kind != WORD or first.value != "workflow":
            raise self.expected(
                first, "'workflow'", hint="a .wf file starts with `workflow <name> {`"
            )
        name = self.expect_word("a workflow name after 'workflow'")
        self.expect_punct("{", f"to open workflow {name.value!r}")
        meta: dict[str, Any] = {}
        inputs: list[InputDecl] = []
        body: list[WorkflowNode] = []
        always: list[WorkflowNode] = []
        while not self.at_punct("}"):
            token = self.peek()
            if token.kind == EOF:
                raise self.expected(token, f"'}}' to close workflow {name.value!r}")
            if token.kind == WORD and self.at_punct("{", 1) and token.value == "meta":
                self.advance()
                meta.update(self.parse_meta(token))
            elif token.kind == WORD and self.at_punct("{", 1) and token.value == "inputs":
                self.advance()
                inputs.extend(self.parse_inputs(inputs))
            elif token.kind == WORD and self.at_punct("{", 1) and token.value == "always":
                self.advance()
                always.extend(self.parse_steps(f"always block of workflow {name.value!r}"))
            elif token.kind == WORD and token.value in ("meta", "inputs"):
                self.advance()
                raise self.expected(
                    self.peek(),
                    f"'{{' after {token.value!r}",
                    hint=f"write `{token.value} {{ ... }}`",
                )
            elif token.kind == WORD and self.at_punct("=", 1):
                raise self.error(
                    token,
                    f"option {token.value!r} is not allowed directly in the workflow",
                    hint="workflow settings go in `meta { ... }`",
                )
            else:
                body.append(self.parse_node())
        self.advance()
        trailing = self.peek()
        if trailing.kind != EOF:
            raise self.error(
                trailing,
                f"unexpected {describe(trailing)} after the end of workflow {name.value!r}",
                expected="end of file",
                hint="a .wf file holds exactly one workflow; move this inside its { }",
            )
        return WorkflowDef(
            name=name.value,
            inputs=tuple(inputs),
            body=tuple(body),
            always=tuple(always),
            source=self.sm.source,
            **meta,
            **self.loc(first),
        )

    def parse_meta(self, start: Token) -> dict[str, Any]:
        opts = OptionSet(self.sm, "meta", self.parse_option_block("meta"), _META_KEYS)
        meta: dict[str, Any] = {}
        if (title := opts.string("title")) is not None:
            meta["title"] = title
        if (description := opts.string("description")) is not None:
            meta["description"] = description
        if (trigger := opts.choice("trigger", ("manual", "pr", "scheduled"))) is not None:
            meta["trigger"] = trigger
        if (targets := opts.strings("targets")) is not None:
            meta["targets"] = targets
        if (group := opts.string("group")) is not None:
            meta["group"] = group
        return meta

    def parse_inputs(self, earlier: list[InputDecl]) -> list[InputDecl]:
        self.expect_punct("{", "to open the inputs block")
        decls: list[InputDecl] = []
        seen = {decl.name for decl in earlier}
        while not self.at_punct("}"):
            name = self.advance()
            if name.kind != WORD:
                raise self.expected(name, "an input name or '}'")
            if name.value in _INPUT_MODIFIERS:
                raise self.error(
                    name,
                    f"{name.value!r} must follow an input name",
                    expected="an input name",
                    hint=f"write `<name> {name.value}`",
                )
            if self.at_punct("="):
                raise self.error(
                    self.peek(),
                    f"input {name.value!r} is declared with modifiers, not '='",
                    hint=f'write `{name.value} default = "..."` or `{name.value} required`',
                )
            if name.value in seen:
                raise self.error(name, f"input {name.value!r} is declared twice")
            seen.add(name.value)
            decls.append(self.parse_input_modifiers(name))
        self.advance()
        return decls

    def parse_input_modifiers(self, name: Token) -> InputDecl:
        given: dict[str, Token] = {}
        default: Value | None = None
        description: str | None = None
        while self.peek().kind == WORD and self.peek().value in _INPUT_MODIFIERS:
            modifier = self.advance()
            if modifier.value in given:
                raise self.error(
                    modifier, f"{modifier.value!r} is given twice for input {name.value!r}"
                )
            given[modifier.value] = modifier
            if modifier.value in ("default", "description"):
                self.expect_punct("=", f"after {modifier.value!r}")
                value = self.parse_value()
                if value.kind != "scalar":
                    raise self.sm.error(
                        value.offset,
                        f"{modifier.value} of input {name.value!r} must be a string, "
                        f"found {value.describe()}",
                    )
                if modifier.value == "default":
                    default = value
                else:
                    description = value.text
        boolean = "boolean" in given
        if boolean and default is not None and default.text not in ("true", "false"):
            raise self.sm.error(
                default.offset,
                f"boolean input {name.value!r} needs a default of true or false, "
                f"found {default.describe()}",
            )
        required = "required" in given or (not boolean and default is None)
        return InputDecl(
            name=name.value,
            required=required and not boolean,
            default=None if default is None else default.text,
            description=description,
            input_type="boolean" if boolean else "string",
            **self.loc(name),
        )

    # ----------------------------------------------------------------- blocks

    def enter_block(self, opener: Token) -> None:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise self.error(
                opener,
                f"blocks are nested more than {MAX_NESTING} levels deep",
                hint="flatten the workflow or move part of it into a `call workflow`",
            )

    def parse_steps(self, owner: str) -> tuple[WorkflowNode, ...]:
        """``{ node* }`` — a block that holds steps and no options."""
        entries, nodes = self.parse_block(owner)
        if entries:
            OptionSet(self.sm, owner, entries, ())
        return nodes

    def parse_block(self, owner: str) -> tuple[list[Entry], tuple[WorkflowNode, ...]]:
        """``{ (key = value)* node* }`` — options first, then steps."""
        opener = self.expect_punct("{", f"to open the {owner}")
        self.enter_block(opener)
        entries: list[Entry] = []
        nodes: list[WorkflowNode] = []
        while True:
            token = self.peek()
            if token.kind == PUNCT and token.value == "}":
                break
            if token.kind == EOF:
                line, col = self.sm.position(opener.offset)
                raise self.expected(token, f"'}}' to close the {owner} opened at {line}:{col}")
            if token.kind in (WORD, STRING) and self.at_punct("=", 1):
                if nodes:
                    raise self.error(
                        token,
                        f"option {token.value!r} of the {owner} comes after its steps",
                        hint="put options at the top of the block, before any step",
                    )
                entries.append(self.parse_entry())
            else:
                nodes.append(self.parse_node())
        self.advance()
        self.depth -= 1
        return entries, tuple(nodes)

    def parse_option_block(
        self, owner: str, *, inputs_block: bool = False, steps_hint: str | None = None
    ) -> list[Entry]:
        """``{ (key = value)* }`` — a block of options only."""
        opener = self.expect_punct("{", f"to open the options of {owner}")
        entries: list[Entry] = []
        while not self.at_punct("}"):
            token = self.peek()
            if token.kind in (WORD, STRING) and self.at_punct("=", 1):
                entries.append(self.parse_entry())
            elif inputs_block and self.at_word("inputs") and self.at_punct("{", 1):
                self.advance()
                entries.append(Entry("inputs", token.offset, self.parse_value()))
            elif token.kind == EOF:
                line, col = self.sm.position(opener.offset)
                raise self.expected(
                    token, f"'}}' to close the options of {owner} opened at {line}:{col}"
                )
            else:
                hint = None
                if token.kind == WORD and token.value in NODE_KEYWORDS:
                    hint = steps_hint or f"{owner} takes options only, not steps"
                elif token.kind == WORD:
                    hint = "options are written `key = value`"
                raise self.expected(token, "an option `key = value` or '}'", hint=hint)
        self.advance()
        return entries

    def parse_entry(self) -> Entry:
        key = self.advance()
        self.advance()  # '='
        return Entry(key.value, key.offset, self.parse_value())

    # ----------------------------------------------------------------- values

    def parse_value(self, depth: int = 0) -> Value:
        token = self.advance()
        kind = token.kind
        if kind in (STRING, INT, NUMWORD):
            if kind == INT and len(token.value) > 10:
                raise self.error(token, f"number {token.value} is too large")
            return Value("scalar", token.offset, token.value, kind)
        if kind == WORD:
            if self.at_punct(".") and self.peek(1).kind == WORD:
                self.advance()
                field = self.advance()
                if self.at_punct("."):
                    raise self.error(
                        self.peek(),
                        "a reference has exactly one dot",
                        hint="write step.field; quote other text containing dots",
                    )
                return Value("scalar", token.offset, f"{token.value}.{field.value}", DOTTED)
            return Value("scalar", token.offset, token.value, WORD)
        if kind == PUNCT and token.value in "[{":
            if depth >= MAX_VALUE_NESTING:
                raise self.error(
                    token, f"values are nested more than {MAX_VALUE_NESTING} levels deep"
                )
            if token.value == "[":
                return self.parse_list(token, depth)
            return self.parse_map(token, depth)
        raise self.expected(token, "a value (a string, number, name, [list] or {map})")

    def parse_list(self, opener: Token, depth: int) -> Value:
        items: list[Value] = []
        while not self.at_punct("]"):
            if self.peek().kind == EOF:
                raise self.expected(self.peek(), "']' to close the list")
            items.append(self.parse_value(depth + 1))
            if self.at_punct(","):
                self.advance()
        self.advance()
        return Value("list", opener.offset, items=items)

    def parse_map(self, opener: Token, depth: int) -> Value:
        entries: list[Entry] = []
        while not self.at_punct("}"):
            key = self.advance()
            if key.kind not in (WORD, STRING):
                raise self.expected(key, "a key or '}' in the map")
            self.expect_punct("=", f"after key {key.value!r}")
            entries.append(Entry(key.value, key.offset, self.parse_value(depth + 1)))
            if self.at_punct(","):
                self.advance()
        self.advance()
        return Value("map", opener.offset, entries=entries)

    # ----------------------------------------------------------------- nodes

    def parse_node(self) -> WorkflowNode:
        token = self.peek()
        if token.kind == WORD:
            handler = _NODE_PARSERS.get(token.value)
            if handler is not None:
                self.advance()
                return handler(self, token)
            guess = close_match(token.value, NODE_KEYWORDS)
            hint = f"did you mean {guess!r}?" if guess else None
            if token.value in ("meta", "inputs"):
                hint = f"'{token.value}' blocks belong directly in the workflow, not in a step"
        else:
            hint = None
        raise self.expected(token, f"a workflow step ({_NODE_LIST})", hint=hint)

    def parse_agent(self) -> AgentRef:
        token = self.advance()
        if token.kind == WORD:
            return AgentRef(kind="name", value=token.value)
        if token.kind == STRING:
            self.check_agent_path(token.value, token.offset)
            return AgentRef(kind="path", value=token.value)
        raise self.expected(token, "an agent name or a quoted agent path after 'call'")

    def check_agent_path(self, path: str, offset: int) -> None:
        """An agent path names a file inside the project: not empty, no ``..``."""
        parts = path.replace("\\", "/").split("/")
        if not path.strip():
            raise self.sm.error(offset, "an agent path must not be empty")
        if ".." in parts:
            raise self.sm.error(
                offset,
                f"agent path {path!r} must not contain '..'",
                hint="use a path inside the project",
            )
        if not parts[-1]:
            raise self.sm.error(offset, f"agent path {path!r} must name a file, not a directory")

    def on_fail(self, opts: OptionSet) -> OnFail | None:
        entry = opts.entry("on_fail")
        if entry is None:
            return None
        value = entry.value
        if value.kind != "scalar" or value.scalar_kind == DOTTED:
            raise opts.value_error(value, "on_fail", "continue or an agent name")
        if value.text == "continue":
            return "continue"
        if not value.text.strip():
            raise opts.value_error(
                value, "on_fail", "continue or an agent name, not an empty string"
            )
        if value.scalar_kind == STRING and "/" in value.text:
            self.check_agent_path(value.text, value.offset)
            return AgentRef(kind="path", value=value.text)
        return AgentRef(kind="name", value=value.text)

    def parse_call(self, start: Token) -> WorkflowNode:
        if self.at_word("workflow") and self.peek(1).kind == WORD:
            self.advance()
            return self.parse_call_workflow(start)
        agent = self.parse_agent()
        owner = f"call {agent.label!r}"
        entries = []
        if self.at_punct("{"):
            entries = self.parse_option_block(owner)
        opts = OptionSet(self.sm, owner, entries, _CALL_KEYS)
        timeout = opts.duration("timeout")
        if timeout is not None and timeout <= 0:
            raise opts.key_error("timeout", "a call timeout must be longer than zero")
        return CallNode(
            agent=agent,
            retries=opts.integer("retries") or 0,
            on_fail=self.on_fail(opts),
            output=opts.string("output"),
            snippets=opts.strings("with") or (),
            as_identity=opts.string("as"),
            plugin_dirs=opts.strings("plugin_dirs") or (),
            timeout=timeout,
            max_turns=opts.integer("max_turns", minimum=1),
            **self.loc(start),
        )

    def parse_call_workflow(self, start: Token) -> CallWorkflowNode:
        name = self.expect_word("a workflow name after 'call workflow'")
        owner = f"call workflow {name.value!r}"
        entries = []
        if self.at_punct("{"):
            entries = self.parse_option_block(owner, inputs_block=True)
        opts = OptionSet(self.sm, owner, entries, _CALL_WORKFLOW_KEYS)
        return CallWorkflowNode(
            workflow=name.value,
            inputs=opts.string_map("inputs") or FrozenMap(),
            retries=opts.integer("retries") or 0,
            on_fail=self.on_fail(opts),
            as_identity=opts.string("as"),
            **self.loc(start),
        )

    def parse_condition(self, keyword: str) -> Condition:
        step = self.expect_word(f"a condition after {keyword!r} (step.marker or a boolean input)")
        if self.at_punct("."):
            self.advance()
            marker = self.expect_word(f"a marker name after '{step.value}.'")
            return StepMarkerCondition(step=step.value, marker=marker.value)
        return BoolInputCondition(input=step.value)

    def parse_if(self, start: Token) -> WorkflowNode:
        condition = self.parse_condition(start.value)
        body = self.parse_steps(f"'{start.value}' block")
        if start.value == "if":
            return IfNode(condition=condition, body=body, **self.loc(start))
        return UnlessNode(condition=condition, body=body, **self.loc(start))

    def parse_loop_condition(self, keyword: str) -> StepMarkerCondition:
        step = self.expect_word(f"a step.marker condition after {keyword!r}")
        if not self.at_punct("."):
            raise self.expected(
                self.peek(),
                f"'.' in the {keyword} condition",
                hint=f"a loop needs a step.marker condition, e.g. `{keyword} "
                f"{step.value}.needs_changes`; a boolean input cannot change inside the loop",
            )
        self.advance()
        marker = self.expect_word(f"a marker name after '{step.value}.'")
        return StepMarkerCondition(step=step.value, marker=marker.value)

    def loop_options(self, opts: OptionSet, keyword: str, start: Token) -> dict[str, Any]:
        opts.require(
            "max_iterations",
            start.offset,
            hint=f"a {keyword} loop needs a bound: add `max_iterations = N` at the top "
            "of its block",
        )
        stuck_after = opts.integer("stuck_after", minimum=2)
        return {
            "max_iterations": opts.integer("max_iterations", minimum=1),
            "stuck_after": stuck_after,
            "on_max_iter": opts.choice("on_max_iter", ("fail", "continue")) or "fail",
        }

    def parse_while(self, start: Token) -> WhileNode:
        condition = self.parse_loop_condition("while")
        owner = f"while {condition.step}.{condition.marker} loop"
        entries, body = self.parse_block(owner)
        opts = OptionSet(self.sm, owner, entries, _LOOP_KEYS)
        return WhileNode(
            step=condition.step,
            marker=condition.marker,
            body=body,
            **self.loop_options(opts, "while", start),
            **self.loc(start),
        )

    def parse_do(self, start: Token) -> WorkflowNode:
        if not self.at_punct("{"):
            token = self.peek()
            hint = None
            if token.kind == WORD:
                hint = "do-while syntax is `do { ... } while step.marker`"
            raise self.expected(token, "'{' after 'do'", hint=hint)
        entries, body = self.parse_block("'do' block")
        # `do { } while a.b` is a do-while, unless `while a.b {` starts a separate loop.
        is_separate_while_loop = (
            self.peek(1).kind == WORD
            and self.at_punct(".", 2)
            and self.peek(3).kind == WORD
            and self.at_punct("{", 4)
        )
        is_do_while = self.at_word("while") and not is_separate_while_loop
        if is_do_while:
            keyword = self.advance()
            condition = self.parse_loop_condition("while")
            owner = f"do ... while {condition.step}.{condition.marker} loop"
            opts = OptionSet(self.sm, owner, entries, _LOOP_KEYS)
            return DoWhileNode(
                step=condition.step,
                marker=condition.marker,
                body=body,
                **self.loop_options(opts, "do-while", keyword),
                **self.loc(start),
            )
        opts = OptionSet(self.sm, "plain 'do' block", entries, _DO_KEYS, _LOOP_ONLY)
        return DoNode(
            output=opts.string("output"),
            snippets=opts.strings("with") or (),
            body=body,
            **self.loc(start),
        )

    def parse_parallel(self, start: Token) -> ParallelNode:
        opener = self.expect_punct("{", "to open the parallel block")
        self.enter_block(opener)
        entries: list[Entry] = []
        calls: list[ParallelCall] = []
        while not self.at_punct("}"):
            token = self.peek()
            if token.kind in (WORD, STRING) and self.at_punct("=", 1):
                if calls:
                    raise self.error(
                        token,
                        f"option {token.value!r} of the parallel block comes after its calls",
                        hint="put options at the top of the block, before any call",
                    )
                entries.append(self.parse_entry())
            elif self.at_word("call"):
                calls.append(self.parse_parallel_call(self.advance()))
            elif token.kind == EOF:
                raise self.expected(token, "'}' to close the parallel block")
            else:
                hint = None
                if token.kind == WORD and token.value in NODE_KEYWORDS:
                    hint = "a parallel block holds only `call` steps"
                raise self.expected(token, "'call' or '}' in the parallel block", hint=hint)
        if not calls:
            raise self.error(
                self.peek(),
                "parallel block must contain at least one call",
                expected="'call'",
            )
        self.advance()
        self.depth -= 1
        opts = OptionSet(self.sm, "parallel block", entries, _PARALLEL_KEYS)
        min_success = opts.integer("min_success", minimum=1)
        if min_success is not None and min_success > len(calls):
            raise opts.key_error(
                "min_success",
                f"min_success = {min_success} but the parallel block has only {len(calls)} call(s)",
                hint=f"use at most {len(calls)}",
            )
        fail_fast = opts.boolean("fail_fast")
        return ParallelNode(
            fail_fast=True if fail_fast is None else fail_fast,
            min_success=min_success,
            output=opts.string("output"),
            snippets=opts.strings("with") or (),
            calls=tuple(calls),
            **self.loc(start),
        )

    def parse_parallel_call(self, start: Token) -> ParallelCall:
        if self.at_word("workflow") and self.peek(1).kind == WORD:
            raise self.error(
                self.peek(),
                "'call workflow' is not allowed inside a parallel block",
                hint="move it out of the parallel block",
            )
        agent = self.parse_agent()
        owner = f"call {agent.label!r} in the parallel block"
        entries = []
        if self.at_punct("{"):
            entries = self.parse_option_block(owner)
        opts = OptionSet(self.sm, owner, entries, _PARALLEL_CALL_KEYS, _PARALLEL_CALL_MISPLACED)
        return ParallelCall(
            agent=agent,
            output=opts.string("output"),
            snippets=opts.strings("with") or (),
            condition=opts.step_marker("if"),
            retries=opts.integer("retries") or 0,
            **self.loc(start),
        )

    def parse_gate(self, start: Token) -> GateNode:
        name = self.expect_word("a gate name after 'gate'")
        entries = []
        if self.at_punct("{"):
            entries = self.parse_option_block(f"gate {name.value!r}")
        gate_type = name.value
        for entry in entries:
            if entry.key == "type" and entry.value.kind == "scalar":
                gate_type = entry.value.text
        if gate_type == QUALITY_GATE_TYPE:
            return self.quality_gate(start, name, entries)
        opts = OptionSet(self.sm, f"gate {name.value!r}", entries, _GATE_KEYS, _GATE_MISPLACED)
        mode = opts.choice("mode", ("min_approvals", "review_decision"))
        if mode == "review_decision" and "min_approvals" in opts:
            raise opts.key_error(
                "min_approvals",
                'cannot specify both mode = "review_decision" and min_approvals',
                hint="remove one of them",
            )
        type_option = opts.string("type")
        if type_option is not None and not _NAME_RE.fullmatch(type_option):
            raise opts.key_error(
                "type",
                f"gate type {type_option!r} is not a valid name",
                hint="use letters, digits, '_' and '-', e.g. human_approval",
            )
        gate_type = name.value if type_option is None else type_option
        timeout = opts.duration("timeout")
        if timeout is not None and timeout <= 0:
            raise opts.key_error("timeout", "a gate timeout must be longer than zero")
        options = self.gate_options(opts)
        select, allow_none = self.choice_rules(opts, options)
        return GateNode(
            name=name.value,
            gate_type=gate_type,
            prompt=opts.string("prompt"),
            min_approvals=opts.integer("min_approvals", minimum=1) or 1,
            approval_mode=mode or "min_approvals",
            timeout=DEFAULT_GATE_TIMEOUT if timeout is None else timeout,
            on_timeout=opts.choice("on_timeout", ("fail", "continue")) or "fail",
            as_identity=opts.string("as"),
            options=options,
            select="one" if select == "one" else "many",
            allow_none=bool(allow_none),
            **self.loc(start),
        )

    @staticmethod
    def choice_rules(
        opts: OptionSet, options: GateOptions | None
    ) -> tuple[str | None, bool | None]:
        """``select`` and ``allow_none``: only on a gate that offers options."""
        select = opts.choice("select", ("one", "many"))
        allow_none = opts.boolean("allow_none")
        if options is None:
            for key in ("select", "allow_none"):
                if key in opts:
                    raise opts.key_error(
                        key,
                        f"option {key!r} of {opts.owner} needs options to choose from",
                        hint='add `options = ["a", "b"]`, or remove ' + repr(key),
                    )
        return select, allow_none

    def gate_options(self, opts: OptionSet) -> GateOptions | None:
        entry = opts.entry("options")
        if entry is None:
            return None
        value = entry.value
        if value.kind == "list":
            labels = opts.strings("options") or ()
            if not labels:
                raise opts.value_error(value, "options", "at least one option")
            duplicates = sorted({label for label in labels if labels.count(label) > 1})
            if duplicates:
                raise self.sm.error(value.offset, f"gate options repeat {duplicates[0]!r}")
            return StaticGateOptions(values=FrozenMap((label, label) for label in labels))
        if value.kind == "map":
            values = opts.map_value(value, "options")
            if not values:
                raise opts.value_error(value, "options", "at least one option")
            return StaticGateOptions(values=values)
        if "." in value.text:
            ref = step_marker(self.sm, value, "a step reference in 'options'")
            return StepRefGateOptions(step=ref.step, field=ref.marker)
        raise opts.value_error(
            value,
            "options",
            'a list ["a", "b"], a map { a = "Label" } or a step.field reference',
        )

    def quality_gate(self, start: Token, name: Token, entries: list[Entry]) -> GateNode:
        owner = f"quality gate {name.value!r}"
        opts = OptionSet(self.sm, owner, entries, _QUALITY_GATE_KEYS, _QUALITY_MISPLACED)
        hint = "a quality gate needs `source = <step>` and `threshold = 0..100`"
        opts.require("source", start.offset, hint=hint)
        opts.require("threshold", start.offset, hint=hint)
        source = opts.name("source") or ""
        return GateNode(
            name=name.value,
            gate_type=QUALITY_GATE_TYPE,
            as_identity=opts.string("as"),
            timeout=0.0,
            quality_gate=QualityGateConfig(
                source=source,
                threshold=opts.integer("threshold", maximum=100) or 0,
                on_fail=opts.choice("on_fail", ("fail", "continue")) or "fail",
            ),
            **self.loc(start),
        )

    def parse_always(self, start: Token) -> AlwaysNode:
        return AlwaysNode(body=self.parse_steps("'always' block"), **self.loc(start))

    def parse_script(self, start: Token) -> ScriptNode:
        name = self.expect_word("a script name after 'script'")
        owner = f"script {name.value!r}"
        if not self.at_punct("{"):
            raise self.expected(
                self.peek(),
                f"'{{' to open the options of {owner}",
                hint='a script needs `{ run = "command" }`',
            )
        opts = OptionSet(self.sm, owner, self.parse_option_block(owner), _SCRIPT_KEYS)
        opts.require("run", start.offset, hint='add `run = "path/to/script.sh"`')
        run = opts.string("run") or ""
        if not run.strip():
            raise opts.key_error("run", f"'run' of {owner} is empty")
        timeout = opts.duration("timeout")
        if timeout is not None and timeout <= 0:
            raise opts.key_error("timeout", "a script timeout must be longer than zero")
        return ScriptNode(
            name=name.value,
            run=run,
            env=opts.string_map("env") or FrozenMap(),
            timeout=timeout,
            retries=opts.integer("retries") or 0,
            on_fail=self.on_fail(opts),
            as_identity=opts.string("as"),
            **self.loc(start),
        )

    def parse_foreach(self, start: Token) -> ForEachNode:
        name = self.expect_word("a name after 'foreach'")
        owner = f"foreach {name.value!r}"
        if not self.at_punct("{"):
            raise self.expected(self.peek(), f"'{{' to open the options of {owner}")
        opts = OptionSet(self.sm, owner, self.parse_option_block(owner), _FOREACH_KEYS)
        for key in ("over", "max_parallel", "workflow"):
            opts.require(key, start.offset)
        on_child_fail = opts.choice("on_child_fail", ("halt", "continue", "skip_dependents"))
        ordered = opts.boolean("ordered") or False
        if on_child_fail == "skip_dependents" and not ordered:
            raise opts.key_error(
                "on_child_fail",
                "on_child_fail = skip_dependents needs ordered = true",
                hint="add `ordered = true` (dependents are only known in ordered mode)",
            )
        return ForEachNode(
            name=name.value,
            over=opts.name("over") or "",
            max_parallel=opts.integer("max_parallel", minimum=1) or 1,
            workflow=opts.name("workflow") or "",
            scope=opts.string_map("scope"),
            filter=opts.string_map("filter"),
            inputs=opts.string_map("inputs") or FrozenMap(),
            ordered=ordered,
            on_cycle=opts.choice("on_cycle", ("fail", "warn")) or "fail",
            on_child_fail=on_child_fail or "continue",
            **self.loc(start),
        )


_NODE_PARSERS = {
    "call": _Parser.parse_call,
    "if": _Parser.parse_if,
    "unless": _Parser.parse_if,
    "while": _Parser.parse_while,
    "do": _Parser.parse_do,
    "parallel": _Parser.parse_parallel,
    "gate": _Parser.parse_gate,
    "always": _Parser.parse_always,
    "script": _Parser.parse_script,
    "foreach": _Parser.parse_foreach,
}
