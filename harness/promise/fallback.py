"""The promised window of a fallback (``upstreams[].fallback``): from a fault on a pool to the first answer its
fallback pool gives a client, derived from the configuration the gateway was rendered with.

* Envoy: the fallback pool's replicas are priority-1 endpoints of the pool's cluster. Envoy sends them the share
  of traffic priority 0 cannot take: with the overprovisioning factor 1.4, none while at least 1/1.4 (71.4%) of
  priority 0 is healthy. So the fallback starts when the gateway has marked the fault's replicas unhealthy (the
  detection window of harness/promise/envoy.py), and answers a client one request later: a user's next request
  starts at most its wait plus one answer of the primary after that, and the fallback answers it in its own
  answer time.
* HAProxy: the fallback pool's replicas are ``backup`` servers of the pool's backend (``option allbackups``),
  used only while every other server is DOWN: the fault must take every replica of the pool, and the fallback
  comes one request after HAProxy's detection (harness/promise/haproxy.py), as on Envoy.
* nginx: the same with ``backup`` servers in the pool's upstream block: nginx passes them requests while every
  other server is unavailable (its ``max_fails`` within ``fail_timeout``: harness/promise/nginx.py), and, when
  tries are left, as the next upstream of a request whose try failed on the last primary.
* LiteLLM: a fallback is per request: a request whose tries on its own model group fail goes to the fallback
  group. The first request started after the fault (at most a wait plus one answer away) fails its
  1 + num_retries tries, each as the fault ends it (harness/promise/effects.py, limited by request_timeout),
  and the fallback group answers it.

* Portkey: a fallback is per request, as LiteLLM's: its ``fallback`` strategy sends a request to the next pool
  when the load balancer's pick answered anything but 2xx. With every replica of the pool faulty, the first
  request started after the fault (at most a wait plus one answer away) fails on its target, with its tries and
  Portkey's backoff between them (harness/promise/portkey.py ``request_cost``), and the fallback pool answers
  it. With some replicas up, the load balancer picks a faulty one at random: no latest.

``fallback_within`` with ``within: promised`` is judged against this window (harness/promise/verdicts.py): an
answer earlier than its lower end or later than its upper end fails (tests/integration/test_fallback_pools.py).
"""

from __future__ import annotations

from harness.faults import Fault
from harness.promise.effects import request_effect
from harness.promise.load import GATEWAY_OVERHEAD_S, LoadFacts
from harness.promise.window import Never, Promise, Unknown, Window
from harness.scenario import Scenario, Upstream
from harness.targets import resolve, split_target

GATEWAY_NAMES = {"haproxy": "HAProxy", "nginx": "nginx"}
# Covers: the LiteLLM proxy's own time for one call of a deployment (a try that fails, or the fallback's answer),
# beyond the fake's. Measured (tests/integration/test_fallback_pools.py, LiteLLM 1.108.7, 2 cores shared with other
# runs): the first fallback answer ended 0.11-0.68 s into the fault in seven runs (the proxy's first call of the
# anthropic provider, after a refused try), later ones took 85-160 ms median against 33 ms through Envoy.
LITELLM_CALL_OVERHEAD = 0.5
# Covers: the Portkey gateway's own time per call of a target (a failed try, or the fallback's answer, translated to
# the chat completions API when the fallback pool is anthropic). Measured (bench/portkey_facts.py, Portkey 1.15.2 on
# Node 20, 2 cores): a refused try and the anthropic fallback's answer, 0.07-0.12 s in all with the fake's own answer
# (load average up to 9); in tests/integration/test_portkey.py the first fallback answer ended 0.059 s into the fault.
PORTKEY_CALL_OVERHEAD = 0.25
OVERPROVISIONING = 1.4  # Envoy's default overprovisioning_factor of a cluster's load assignment


def _answer(scenario: Scenario, pool: Upstream) -> float:
    """One answer of ``pool``'s fakes to the load: time to first token and max_tokens at its rate, through a gateway."""
    return pool.ttft + scenario.load.max_tokens / pool.tokens_per_s + GATEWAY_OVERHEAD_S


def fallback_window(scenario: Scenario, fault: Fault, facts: LoadFacts | None = None) -> Promise:
    """Fault start → the first answer served by the fallback pool of the fault's pool (from the scenario's own
    settings, or the run's facts for Envoy's detection)."""
    pools = {u.name: u for u in scenario.upstreams}
    name = split_target(fault.target)[0]
    primary = pools[name]
    if primary.fallback is None or primary.fallback not in pools:
        return Never(f"pool {name!r} has no fallback pool")
    fallback = pools[primary.fallback]
    if name != scenario.load_pool:
        return Never(f"the load goes to {scenario.load_pool!r}, not {name!r}")
    gap = scenario.load.wait + _answer(scenario, primary)
    answer = _answer(scenario, fallback)
    then = (f"then a user's next request (at most wait {scenario.load.wait:g}s + one answer {_answer(scenario, primary):.3g}s "
            f"later) is answered by {fallback.name!r} in {answer:.3g}s")
    kind = scenario.gateway.kind
    if kind in ("envoy", "haproxy", "nginx"):
        from harness.promise import detection_window

        hit, replicas = len(resolve(fault.target, scenario.pools)), primary.replicas
        if kind == "envoy" and (replicas - hit) / replicas * OVERPROVISIONING >= 1.0:
            return Never(f"{replicas - hit} of {name!r}'s {replicas} replicas stay healthy, at least 1/1.4 of "
                         f"priority 0: Envoy keeps all traffic there")
        if kind != "envoy" and hit < replicas:
            return Never(f"{replicas - hit} of {name!r}'s {replicas} replicas stay up: {GATEWAY_NAMES[kind]} uses "
                         "backup servers only while every other server is unavailable")
        detection = detection_window(scenario, fault, facts)
        if not isinstance(detection, Window):
            return detection
        how = "Envoy spills to priority 1" if kind == "envoy" else f"{GATEWAY_NAMES[kind]} turns to its backup servers"
        return Window(detection.earliest, detection.latest + gap + answer,
                      f"{how} when it has marked the replicas unhealthy ({detection.how}); {then}",
                      margin=detection.margin)
    if kind == "litellm":
        g = scenario.gateway
        effect = request_effect(fault, g.request_timeout)
        if effect.kind == "ok":
            return Never(f"the primary's requests succeed ({effect.why}): LiteLLM does not fall back")
        if effect.kind in ("hangs", "unknown"):
            return Unknown(effect.why)
        tries = 1 + (g.retries.num_retries if g.retries is not None else 0)
        return Window(answer, gap + tries * effect.takes + answer + (tries + 1) * LITELLM_CALL_OVERHEAD,
                      f"LiteLLM falls back per request: the first request started after the fault (at most wait "
                      f"+ one answer, {gap:.3g}s, later) fails its {tries} {'try' if tries == 1 else 'tries'} on "
                      f"{name!r} ({effect.why}: {effect.takes:g}s each) and {fallback.name!r} answers it in "
                      f"{answer:.3g}s; +{LITELLM_CALL_OVERHEAD:g}s of the proxy's own per call ({tries + 1} calls)")
    if kind == "portkey":
        return _portkey(scenario, fault, name, fallback.name, gap, answer)
    return Unknown(f"the {kind} adapter renders no fallback pools")


def _portkey(scenario: Scenario, fault: Fault, name: str, fallback: str, gap: float, answer: float) -> Promise:
    from harness.promise.portkey import request_cost

    cost = request_cost(scenario, fault)
    if cost.effect.kind == "ok":
        return Never(f"the primary's requests succeed ({cost.effect.why}): Portkey does not fall back")
    if cost.effect.kind in ("hangs", "unknown"):
        return Unknown(cost.effect.why)
    hit, replicas = len(resolve(fault.target, scenario.pools)), scenario.pools[name]
    calls = cost.tries + 1
    if hit < replicas:
        return Unknown(f"Portkey falls back per request, and only a request its load balancer sends (at random) to "
                       f"one of the {hit} faulty of {name!r}'s {replicas} replicas fails over: when the first does "
                       f"is chance; that request's {cost.how}, then {fallback!r} answers it in {answer:.3g}s")
    return Window(answer, gap + cost.seconds + answer + calls * PORTKEY_CALL_OVERHEAD,
                  f"Portkey falls back per request: the first request started after the fault (at most wait + one "
                  f"answer, {gap:.3g}s, later) fails on {name!r} with {cost.how}, and {fallback!r} answers it in "
                  f"{answer:.3g}s; +{PORTKEY_CALL_OVERHEAD:g}s of the gateway's own per call ({calls} calls)")
