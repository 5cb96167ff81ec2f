import { useState, type FormEvent } from "react";
import { registry, errorText, fmtTime } from "../api";
import { SourceStatus } from "../gen/hookmesh/registry/v1/registry_pb";
import { ErrorBox, NeedProject, usePoll, useSession } from "../lib";

// SourcesPage lists the project's sources (RabbitMQ queues ingest
// consumes) with their counters, and creates, pauses, activates and
// deletes them.
export function SourcesPage() {
  const { session } = useSession();
  const projectId = session.projectId;
  const list = usePoll(() => registry.listSources({ projectId }), [projectId], !!projectId);
  const [name, setName] = useState("");
  const [queue, setQueue] = useState("");
  const [error, setError] = useState("");
  if (!projectId) return <NeedProject />;
  const act = async (f: () => Promise<unknown>) => {
    setError("");
    try {
      await f();
      list.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const create = (e: FormEvent) => {
    e.preventDefault();
    void act(async () => {
      await registry.createSource({ projectId, name, amqp: { queue } });
      setName("");
      setQueue("");
    });
  };
  return (
    <div>
      <h1>Sources</h1>
      <p className="muted">
        Each message of a source's RabbitMQ queue becomes an event; one that can never be an event goes to <span className="mono">&lt;queue&gt;.rejected</span>.
      </p>
      <form className="card form-row" onSubmit={create}>
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} data-testid="source-name" />
        </label>
        <label>
          Queue
          <input value={queue} onChange={(e) => setQueue(e.target.value)} data-testid="source-queue" />
        </label>
        <button type="submit" className="primary" data-testid="source-create">
          Create source
        </button>
      </form>
      <ErrorBox error={error || list.error} />
      <table data-testid="sources-table">
        <thead>
          <tr>
            <th>Name</th>
            <th>Queue</th>
            <th>Status</th>
            <th>Accepted</th>
            <th>Duplicates</th>
            <th>Rejected</th>
            <th>Created</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {list.data?.sources.map((s) => (
            <tr key={s.id} data-testid={`source-${s.id}`}>
              <td>
                {s.name}
                <div className="mono muted">{s.id}</div>
              </td>
              <td className="mono">{s.amqp?.queue}</td>
              <td data-testid={`source-status-${s.id}`}>{s.status === SourceStatus.PAUSED ? "paused" : "active"}</td>
              <td data-testid={`source-accepted-${s.id}`}>{s.accepted.toString()}</td>
              <td>{s.duplicates.toString()}</td>
              <td>{s.rejected.toString()}</td>
              <td>{fmtTime(s.createTime)}</td>
              <td>
                {s.status === SourceStatus.PAUSED ? (
                  <button data-testid={`source-activate-${s.id}`} onClick={() => act(() => registry.activateSource({ projectId, sourceId: s.id }))}>
                    Activate
                  </button>
                ) : (
                  <button data-testid={`source-pause-${s.id}`} onClick={() => act(() => registry.pauseSource({ projectId, sourceId: s.id }))}>
                    Pause
                  </button>
                )}{" "}
                <button
                  className="danger"
                  onClick={() =>
                    window.confirm("Delete this source? Its queue and messages stay on the broker.") &&
                    act(() => registry.deleteSource({ projectId, sourceId: s.id }))
                  }
                >
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
