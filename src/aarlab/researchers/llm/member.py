"""Running one LLM researcher of a lab: the lab-side half of ``Lab._run_member``.

The loop and the API key live in the lab process; the sandbox is built exactly as for the
search researcher (same spec, same checks) and receives only the researcher's own lab token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from aarlab.client import LabClient, LabError
from aarlab.errors import AarlabError
from aarlab.kits.kit import SPLITS, TaskKit
from aarlab.lab.researcher_env import ResearcherEnv
from aarlab.researchers.llm.config import LlmOptions
from aarlab.researchers.llm.local import fit_to_server, prices_for
from aarlab.researchers.llm.loop import LlmResearcher
from aarlab.researchers.llm.policy import LlmPolicy, parse_policy
from aarlab.researchers.llm.pricing import PriceTable, load_prices
from aarlab.researchers.llm.prompt import Prompt
from aarlab.researchers.llm.providers import ProviderError, make_provider
from aarlab.researchers.llm.tools import Toolbox
from aarlab.sandbox.spec import Limits, SandboxSpec
from aarlab.w2s.backends.lm_models import sandbox_mounts


def preflight(policies: list[str], options: LlmOptions, check_provider: bool = True,
              on_warning: Callable[[str], None] = print) -> None:
    """Fail before the lab starts, with one line, on a bad policy, price file, prompt, key or
    model; and on a dollar budget for a model without a price."""
    llm = [p for p in (parse_policy(x) for x in policies) if p is not None]
    if not llm:
        return
    load_prices(options.prices_file)
    Prompt(options.prompt_file)
    for policy in {p.text: p for p in llm}.values():
        prices = prices_for(policy, options)  # a local server's model is free unless priced
        check_price(policy, options, prices)
        if prices.lookup(policy.model) is None:
            on_warning(f"no price for model {policy.model!r} (table of {prices.as_of}): its "
                       "tokens are counted, its dollars shown as unpriced; add it with "
                       "--llm-prices FILE")
        if check_provider:
            provider = _provider(policy, options)
            try:
                provider.check()
            except ProviderError as e:
                raise AarlabError(e.message) from None


def check_price(policy: LlmPolicy, options: LlmOptions, prices: PriceTable) -> None:
    if options.budget_usd is not None and prices.lookup(policy.model) is None:
        raise AarlabError(f"--llm-budget: no price for model {policy.model!r}, so dollars "
                          "cannot be counted",
                          hint="add it with --llm-prices FILE, or budget in tokens "
                               "(--llm-token-budget)")


def _provider(policy: LlmPolicy, options: LlmOptions):
    try:
        return make_provider(policy, timeout_s=options.request_timeout_s,
                             max_retries=options.max_retries)
    except ProviderError as e:
        raise AarlabError(e.message) from None


def task_context(kit: TaskKit) -> dict:
    # student_lm: the strong LM's name on an LM task (the prompt then explains the LoRA
    # student and what it costs), else None.
    lm = kit.manifest.get("student_lm") or {}
    return {"name": kit.name, "format": kit.format, "label_names": kit.label_names,
            "strong_model": kit.strong_model, "seeds": kit.seeds,
            "rows": {s: len(kit.ids(s)) for s in SPLITS}, "student_lm": lm.get("name")}


def run_llm_member(lab, m, kit: Path, deadline: float, told: ResearcherEnv) -> None:
    """The member thread's body for an ``llm:…`` policy (``lab`` is the lab's ``LabApi``,
    ``told`` what its sandboxed tools are told, from ``aarlab.lab.members``)."""
    opts: LlmOptions = lab.options.llm
    policy = parse_policy(m.policy)
    m.workspace.mkdir(parents=True, exist_ok=True)
    threads = lab.options.threads_per_researcher
    env = {**told.to_env(), "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
           "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    lm_ro, lm_env = sandbox_mounts(kit)  # an LM task: its strong LM, read-only
    spec = SandboxSpec(name=m.name, workspace=m.workspace, kit=kit, socket=lab.socket_for(m),
                       env={**env, **lm_env}, extra_ro=lm_ro,
                       limits=Limits(timeout_s=opts.shell_timeout_s,
                                     cpu_s=int(opts.shell_timeout_s * threads) + 60,
                                     memory_bytes=lab.options.memory_bytes))
    with LabClient(socket=lab.socket_for(m), token=m.token) as client:
        def event(kind: str, payload: dict) -> None:
            with contextlib.suppress(LabError):  # telemetry never stops research
                client.post_event(kind, payload)

        try:
            sandbox = lab.open_sandbox(m, spec)
            provider = _provider(policy, opts)
            prices = prices_for(policy, opts)
            prompt, opts, fitted = fit_to_server(provider, opts)
        except AarlabError as e:
            _fail(lab, m, e.message, event)
            return
        m.sandbox = sandbox
        event("note", {"text": f"prompt {fitted['prompt']} (server context "
                               f"{fitted.get('context_tokens') or 'not reported'} tokens)"})
        lab.set_member(m, status="running", sandboxed=sandbox.sandboxed)
        tk = TaskKit(kit)
        context = {"task": task_context(tk),
                   "direction": {"name": m.direction.name, "text": m.direction.text},
                   "paths": {"kit": sandbox.kit_path, "workspace": sandbox.workspace_path},
                   "policy": policy.text}
        researcher = LlmResearcher(
            provider=provider,
            toolbox=Toolbox(sandbox, client, lab.options.task, opts, deadline, event),
            client=client, store=lab.store, researcher_id=m.researcher_id, lab_id=lab.lab_id,
            options=opts, prices=prices, prompt=prompt,
            transcripts=lab.lab_dir / "transcripts" / m.name, deadline=deadline,
            context=context, stop_event=lab.stop_event, on_event=event)
        try:
            reason = researcher.run()
        except Exception as e:  # a bug must not leave the member shown as running forever
            _fail(lab, m, f"the LLM loop crashed: {type(e).__name__}: {e}", event)
            raise
        if reason in ("fatal", "failing"):
            _fail(lab, m, researcher.last_error or reason, event)
            return
        event("status", {"text": f"finished: {reason}", "reason": reason})
        lab.set_member(m, status="done")


def _fail(lab, m, message: str, event) -> None:
    event("error", {"text": message[:2000]})
    lab.set_member(m, status="error")
    lab.on_warning(f"researcher {m.name}: {message}")
