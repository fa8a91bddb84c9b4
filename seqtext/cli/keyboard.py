"""`seqtext complete`: keyboard suggestions, interactive on a terminal, line by line from a pipe.

On a terminal a small prompt_toolkit application shows the suggestions under the input and updates
them on every keystroke. prompt_toolkit (the library IPython uses) handles the terminal: key
decoding, redrawing, Windows consoles, and a pipe input that lets the tests drive it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from seqtext.cli.common import err, friendly_errors

KEYS_HELP = "Tab or Alt-1: take the first suggestion · Alt-2, Alt-3: the others · Enter: next line · Ctrl-D: quit"


def render(suggestions: list[Any], as_json: bool) -> str:
    """One output line: the words tab-separated, or a JSON list of {"word", "prob"}."""
    if as_json:
        return json.dumps([{"word": s.word, "prob": s.prob} for s in suggestions], ensure_ascii=False)
    return "\t".join(s.word for s in suggestions)


def keyboard_app(suggest: Callable[[str], list[str]], *, input: Any = None, output: Any = None) -> Any:
    """One line of typing: suggestions under the input, updated on every keystroke.

    Returns a prompt_toolkit Application whose run() gives the finished line, or None to quit.
    """
    from prompt_toolkit.application import Application
    from prompt_toolkit.buffer import Buffer
    from prompt_toolkit.filters import is_done
    from prompt_toolkit.key_binding import KeyBindings
    from prompt_toolkit.layout import ConditionalContainer, HSplit, Layout, Window
    from prompt_toolkit.layout.controls import BufferControl, FormattedTextControl
    from prompt_toolkit.layout.processors import BeforeInput
    from prompt_toolkit.styles import Style

    from seqtext.keyboard.completion import partial_word

    shown: list[str] = []
    asked = [""]

    def refresh(buffer: Buffer) -> None:
        if buffer.document.text_before_cursor != asked[0]:  # a keystroke moves text and cursor: ask once
            asked[0] = buffer.document.text_before_cursor
            shown[:] = suggest(asked[0])

    def accept(buffer: Buffer, index: int) -> None:
        if index < len(shown):
            word = shown[index]  # before the deletion below: it refreshes `shown` for the shorter text
            buffer.delete_before_cursor(len(partial_word(buffer.document.text_before_cursor)))
            buffer.insert_text(word + " ")

    def bar() -> list[tuple[str, str]]:
        if not shown:
            return [("class:hint", "  (no suggestions)")]
        parts: list[tuple[str, str]] = []
        for i, word in enumerate(shown):
            parts += [("class:key", f"  {i + 1} "), ("class:first" if i == 0 else "class:word", f" {word} ")]
        return parts

    buffer = Buffer(multiline=False, on_text_changed=refresh, on_cursor_position_changed=refresh)
    shown[:] = suggest("")
    keys = KeyBindings()
    keys.add("tab")(lambda event: accept(buffer, 0))
    for n in range(3):
        keys.add("escape", str(n + 1))(lambda event, n=n: accept(buffer, n))
    keys.add("enter")(lambda event: event.app.exit(result=buffer.text))
    keys.add("c-d")(lambda event: event.app.exit(result=None))
    keys.add("c-c")(lambda event: event.app.exit(result=None))
    layout = HSplit(
        [
            Window(BufferControl(buffer, input_processors=[BeforeInput("> ", style="class:prompt")]), height=1),
            ConditionalContainer(Window(FormattedTextControl(bar), height=1), filter=~is_done),
        ]
    )
    style = Style.from_dict({"prompt": "bold", "key": "reverse", "first": "bold", "hint": "italic"})
    return Application(layout=Layout(layout), key_bindings=keys, style=style, input=input, output=output)


def interactive(suggest: Callable[[str], list[str]], finished: Callable[[str], None] | None = None) -> None:
    """Type line after line until Ctrl-D or Ctrl-C; finished lines go to stdout when it is redirected,
    and to `finished` (learning) when Enter ends them."""
    from prompt_toolkit.output import create_output

    err.print(KEYS_HELP, highlight=False)
    output = create_output(always_prefer_tty=True)  # draw on the terminal even when stdout is a file
    while (line := keyboard_app(suggest, output=output).run()) is not None:
        if finished is not None:
            finished(line)
        if not sys.stdout.isatty():
            print(line, flush=True)


def learning_mode(learn: bool | None, learn_lines: bool, at_terminal: bool) -> bool:
    """Whether to learn: on by default at the terminal; from a pipe or --text only with --learn --learn-lines."""
    from seqtext.errors import ConfigError

    if at_terminal:
        if learn_lines:
            raise ConfigError("--learn-lines is for piped input; at the terminal a line is learned when Enter ends it")
        return learn is not False
    if learn and not learn_lines:
        raise ConfigError(
            "--learn: piped lines (and --text) are queries, not finished text; add --learn-lines to learn each one"
        )
    if learn_lines and not learn:
        raise ConfigError("--learn-lines learns each input line only with --learn: add --learn")
    return bool(learn)


@friendly_errors
def complete_cmd(
    run: Annotated[Path, typer.Argument(help="Language-model run directory")],
    text: Annotated[str | None, typer.Option(help="Text typed so far: print its suggestions once and exit")] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, help="How many suggestions")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list of {word, prob} per line")] = False,
    ngram: Annotated[
        bool, typer.Option(help="Mix in the run's n-gram when it has one (--no-ngram: the recurrent model alone)")
    ] = True,
    int8: Annotated[
        bool,
        typer.Option(
            help="An LSTM's keystroke steps in int8 (torch's dynamic quantization, x86 CPUs): the same keystroke "
            "savings within 0.2 points, faster; --no-int8 runs them in fp32"
        ),
    ] = True,
    learn: Annotated[
        bool | None,
        typer.Option(
            "--learn/--no-learn",
            help="Learn what you type into your personal data (default: on at the terminal, off from a pipe)",
        ),
    ] = None,
    learn_lines: Annotated[
        bool, typer.Option("--learn-lines", help="With --learn from a pipe: learn each input line as finished text")
    ] = False,
    forget: Annotated[
        bool, typer.Option("--forget", help="Forget everything learned (remove the user data) first")
    ] = False,
    user_data: Annotated[
        Path | None,
        typer.Option(help="Your personal data, a JSON file (default: personal.json in your data directory)"),
    ] = None,
) -> None:
    """Suggest whole words as you type: interactive on a terminal, one line of suggestions per input line otherwise."""
    from seqtext.keyboard.completion import Completer
    from seqtext.keyboard.personal import SAVE_DELAY
    from seqtext.keyboard.userdata import default_user_data, forget_file
    from seqtext.textfiles import STDIN, standard_input, text_lines, valid_unicode

    if text is not None:
        valid_unicode(text, "--text")
    at_terminal = text is None and sys.stdin is not None and sys.stdin.isatty()
    learning = learning_mode(learn, learn_lines, at_terminal)
    user_data = user_data or default_user_data()
    if forget:
        forget_file(user_data)
        err.print(f"Forgot everything learned: removed {user_data}", highlight=False, soft_wrap=True)
    completer = Completer(run, ngram=ngram, user_data=user_data, int8=int8, save_delay=SAVE_DELAY)
    if learning:
        completer.personal.check_writable()  # before any typing, not after it
    try:
        if at_terminal:
            suggest = lambda typed: [s.word for s in completer.suggest(typed, k)]  # noqa: E731
            interactive(suggest, completer.learn if learning else None)
            return
        for line in [text] if text is not None else text_lines(standard_input(), STDIN):
            suggestions = completer.suggest(line, k)
            if learning:
                completer.learn(line)  # on disk within SAVE_DELAY seconds, even if this process is killed
            print(render(suggestions, as_json), flush=True)
    finally:
        completer.save()  # what the last SAVE_DELAY seconds learned
