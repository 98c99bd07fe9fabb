"""Rendering the prompt template (``prompt.md.jinja`` or the user's) into system + first message.

A template defines two blocks: ``system`` (stable for a session, so it can be cached) and
``session`` (each fresh session's opening message: budget left, the notebook, the forum).
"""

from __future__ import annotations

from pathlib import Path

import jinja2

from aarlab.errors import AarlabError

DEFAULT = Path(__file__).with_name("prompt.md.jinja")
# For small context windows (chosen by local.fit_to_server).
COMPACT = Path(__file__).with_name("prompt_compact.md.jinja")


class Prompt:
    def __init__(self, path: Path | None = None):
        path = Path(path) if path else DEFAULT
        try:
            source = path.read_text(encoding="utf-8")
        except OSError as e:
            raise AarlabError(f"--llm-prompt: cannot read {path}: {e.strerror}") from None
        env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True,
                                 autoescape=False)  # noqa: S701 - markdown for a model, not HTML
        try:
            self.template = env.from_string(source)
        except jinja2.TemplateSyntaxError as e:
            raise AarlabError(f"--llm-prompt: {path}:{e.lineno}: {e.message}") from None
        missing = {"system", "session"} - set(self.template.blocks)
        if missing:
            raise AarlabError(f"--llm-prompt: {path} lacks block(s) {sorted(missing)}",
                              hint="define {% block system %}…{% endblock %} and "
                                   "{% block session %}…{% endblock %}")
        self.path = path

    def render(self, variables: dict) -> tuple[str, str]:
        """(system prompt, first user message)."""
        try:
            ctx = self.template.new_context(variables)
            system = "".join(self.template.blocks["system"](ctx)).strip()
            session = "".join(self.template.blocks["session"](ctx)).strip()
        except jinja2.UndefinedError as e:
            raise AarlabError(f"--llm-prompt: {self.path}: {e.message}",
                              hint="see the default prompt.md.jinja for the variables") from None
        return system, session
