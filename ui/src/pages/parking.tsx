import { useState } from "react";
import { operations, errorText, fmtTime } from "../api";
import { ErrorBox, Headers, Json, usePoll, useSession } from "../lib";

// ParkingPage lists what the broker parked (messages no service could
// process) and replays chosen ones, or all, to the queue each came from.
export function ParkingPage() {
  const { session } = useSession();
  const list = usePoll(() => operations.listParkedMessages({ limit: 200 }), [], session.admin);
  const [selected, setSelected] = useState<Record<string, boolean>>({});
  const [open, setOpen] = useState<Record<string, boolean>>({});
  const [error, setError] = useState("");
  const [result, setResult] = useState("");
  if (!session.admin) return <div className="empty">The parking queue is for the admin key.</div>;
  const ids = Object.keys(selected).filter((id) => selected[id]);
  const replay = async (all: boolean) => {
    if (all && !window.confirm("Replay every parked message?")) return;
    setError("");
    setResult("");
    try {
      const resp = await operations.replayParkedMessages(all ? { all: true } : { ids });
      setResult(`${resp.replayed} replayed${resp.notFound.length ? `; no longer parked: ${resp.notFound.join(", ")}` : ""}.`);
      setSelected({});
      list.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const messages = list.data?.messages ?? [];
  return (
    <div>
      <div className="title-row">
        <h1>Parking</h1>
        <div className="actions">
          <button className="primary" disabled={ids.length === 0} onClick={() => replay(false)} data-testid="parking-replay-selected">
            Replay selected ({ids.length})
          </button>
          <button disabled={messages.length === 0} onClick={() => replay(true)} data-testid="parking-replay-all">
            Replay all
          </button>
        </div>
      </div>
      <p className="muted">
        Messages the services could not process. A replay publishes each to the queue it came from; it leaves the parking queue once the broker
        confirmed the copy. <span data-testid="parking-total">{list.data ? `${list.data.total} parked` : ""}</span>
      </p>
      <ErrorBox error={error || list.error} testid="parking-error" />
      {result && <div className="ok" data-testid="parking-result">{result}</div>}
      <table data-testid="parking-table">
        <thead>
          <tr>
            <th></th>
            <th>Parked</th>
            <th>Reason</th>
            <th>From queue</th>
            <th>Type</th>
            <th>Message ID</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {messages.map((m) => [
            <tr key={m.id} data-testid={`parked-row-${m.id}`}>
              <td>
                <input
                  type="checkbox"
                  checked={!!selected[m.id]}
                  onChange={(e) => setSelected((s) => ({ ...s, [m.id]: e.target.checked }))}
                  data-testid={`parked-select-${m.id}`}
                />
              </td>
              <td>{fmtTime(m.parkTime)}</td>
              <td data-testid={`parked-reason-${m.id}`}>{m.reason}</td>
              <td className="mono">{m.parkedFrom}</td>
              <td className="mono">{m.type}</td>
              <td className="mono">{m.messageId}</td>
              <td>
                <button onClick={() => setOpen((o) => ({ ...o, [m.id]: !o[m.id] }))}>{open[m.id] ? "Hide" : "Show"}</button>
              </td>
            </tr>,
            open[m.id] && (
              <tr key={`${m.id}-body`}>
                <td colSpan={7}>
                  <div className="two-col">
                    <div>
                      <h4>Headers</h4>
                      <Headers headers={m.headers} />
                    </div>
                    <div>
                      <h4>Body</h4>
                      <Json text={m.bodyJson || new TextDecoder().decode(m.body)} />
                    </div>
                  </div>
                </td>
              </tr>
            ),
          ])}
        </tbody>
      </table>
      {list.data && messages.length === 0 && <div className="empty">Nothing is parked.</div>}
    </div>
  );
}
