"""A faithful offline simulator of the local Lingma runtime (legacy "cosy/LSP4J" dialect).

## Lingma simulator

The real Lingma binary is not needed for development or tests: the package ships a
simulator with the same command line, readiness signals and wire protocol
(see `lingma-protocol.md` §8).

```sh
python -m trio_lingma.simulator start --workDir /tmp/sim --socketPort 0 --httpPort 0
```

* Listens on `ws://127.0.0.1:<socketPort>/` (path `/`) and on a trivial HTTP port;
  port `0` picks a free port. `--copyDataDir` and `--endpoint` are accepted and ignored;
  `--dialect legacy` is the default; `--dialect acp` serves the ACP `session/*` family
  (the same scenarios as `session/update` notifications, `session/prompt` answered
  `{"stopReason"}` at the turn's end, `session/cancel` honoured; see `_acp.py`) and
  `--dialect acp-vscode` a runtime whose `session/new` is -32601 (VS Code's);
  `--ackTimeout S` / `--toolTimeout S` tune the timeouts below; `--maxMessageBytes N` is the
  read limit (64 MiB), `--ipcSocket PATH` also serves a unix socket, and `--profile
  realistic-acp` behaves like the real desktop runtimes were seen to (see `_profile.py`).
* Ready when `<workDir>/logs/lingma.log` contains
  `Communication servers ready - WebSocket: N, HTTP: M`; `<workDir>/SharedClientCache/.info.json`
  (`{"websocketPort":N,"pid":...,"ipcServerPath":"","isDev":false}`) is written just before.
* Stops with exit status 0 on SIGTERM/SIGINT or an LSP `exit` notification.
* Every message is `Content-Length` framed, one message per WebSocket text frame; unframed
  JSON is ignored and logged as `Unknown message header`.
* Methods: `initialize`, `auth/status` (logged in), `config/queryModels` (Auto,
  qwen3-coder, qwen3-thinking, qwen2.5-max in every scene), `ping`, `chat/ask`, `chat/stop`,
  `chat/listAllSessions`, `chat/getSessionById`, `chat/deleteSessionById`,
  `chat/clearAllSessions`, `tool/invokeResult`, `shutdown`, and the simulator-only
  `sim/stats`. Anything else: error -32601 `unknown method: X`.
* `chat/ask` is answered at once (`{"requestId","isSuccess":true,"status":"ok","errorMessage":""}`);
  the turn then streams as server→client *requests* (each with a fresh id, which the client
  must answer): `chat/process_step_callback` (step_start), `session/title/update`,
  [`chat/think` start / deltas / done], `chat/answer`* (one of them is an empty `""`
  fragment), `chat/process_step_callback` (step_end), `chat/finish`
  (`reason:"success"`, `statusCode:200`, `fullAnswer`). A push not answered within
  `--ackTimeout` (3 s) is logged `no response from client, timeout reached` and counted.
* An empty `sessionId` gets a fresh uuid, used in every push of that turn. History is kept
  per sessionId until `chat/deleteSessionById`.
* `chat/stop {requestId}` answers `{}` and ends that turn with `chat/finish`
  `reason:"cancelled"`, `statusCode:200` (in every scenario).
* A reasoning model (`extra.modelConfig.key` = `dashscope_qwen_plus_20250428_thinking`)
  streams thinking before the answer, like the `think` scenario.

### Scripting a turn

Put a directive in the question: `[sim <scenario> key=value ...]`. The LAST match of
`\\[sim\\s+(\\w+)((?:\\s+\\w+=[^\\s\\]]*)*)\\s*\\]` anywhere in `questionText` wins (so a
flattened multi-turn transcript is scripted by its newest directive); all directives are
removed from the text that is echoed. `delay=S` (seconds between pushes) works with every
scenario. An unknown scenario or parameter ends the turn with `chat/finish`
`reason:"error"`, `statusCode:400`, and the message in `fullAnswer`.

| Directive | Behaviour |
|---|---|
| *(none)* / `[sim echo]` | answer `Echo: <question without directives>`, in 8-character chunks, an empty `""` chunk second |
| `[sim think]` | `chat/think` (`step:"start"`, text `""`), thinking deltas `Thinking about: <text>` (`step:"start"`), `chat/think` (`step:"done"`), then the echo answer |
| `[sim tools calls=N status=ERROR]` | per call a `chat/answer` marker `` ```toolCall::read_file::<id>::INIT\n``` ``, `tool/call/sync` PENDING and RUNNING; then concurrently `tool/invoke {requestId, toolCallId, name:"read_file", parameters:{file_path:"/project/a.py"}, async:true}`, waiting (`--toolTimeout`, 5 s) for its ack and the client's `tool/invokeResult` (answered `{"errorCode":null,"errorMessage":null}`), then `tool/call/sync` FINISHED with `results:[{"content": <result as JSON text>}]` (ERROR on `status=ERROR`, a client `success:false` or a timeout); then the echo answer, `chat/finish`, and `tool/call/sync {toolCallId:"", toolCallStatus:"REQUEST_FINISHED"}`. Tool call ids are `sim-<requestId>-<i>`; call *i* > 0 reads `/project/a<i>.py` |
| `[sim slow delay=S]` | echo with S seconds (default 0.2) between pushes |
| `[sim long chunks=N]` | N chunks `chunk 0 `, `chunk 1 `, ... (default 5) |
| `[sim error status=500 after=N]` | the first N echo chunks (default 0), then `chat/finish` `reason:"error"`, `statusCode:<status>` |
| `[sim crash after=N]` | the first N echo chunks, then the process dies (`os._exit(1)`); in-process (`exit_on_crash=False`) the WebSocket is closed with code 1011 instead |
| `[sim hang after=N]` | the first N echo chunks, then nothing more for this request (other requests are still served; `chat/stop` ends it as cancelled) |
| `[sim unanswered]` | echo, but each push waits until the client answered the previous one (pitfall 1: a client that never answers stalls after the first push) |
| `[sim stray]` | echo with a server→client request `workspace/configuration` and a notification `window/logMessage` in the middle of the stream |

`sim/stats` returns what reached the simulator:
`{"asks":[{"requestId","sessionId","questionText","isReply","model","mode"}], "stops":[requestId],
"deletedSessions":[sessionId], "unansweredPushes":n, "sessions":{sessionId: turnCount}}`.

In tests, run it in-process:
`ports = await nursery.start(serve_simulator, SimulatorConfig(work_dir=tmp_path))`, then
connect to `ports.ws_url`.
"""

from ._plan import Ask, TurnPlan, answer_pieces, plan_turn
from ._scenario import SCENARIOS, Directive, DirectiveError, Scenario, parse_question
from ._server import DIALECTS, SimulatorConfig, SimulatorPorts, serve_simulator

__all__ = [
    "DIALECTS",
    "SCENARIOS",
    "Ask",
    "Directive",
    "DirectiveError",
    "Scenario",
    "SimulatorConfig",
    "SimulatorPorts",
    "TurnPlan",
    "answer_pieces",
    "parse_question",
    "plan_turn",
    "serve_simulator",
]
