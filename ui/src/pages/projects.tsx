import { useState, type FormEvent } from "react";
import { registry, errorText, fmtTime } from "../api";
import { RetryStrategy } from "../gen/hookmesh/registry/v1/registry_pb";
import { ErrorBox, Pager, Secret, useCursor, usePoll, useSession } from "../lib";

export function ProjectsPage() {
  const { session, setProject } = useSession();
  const cursor = useCursor([]);
  const list = usePoll(() => registry.listProjects({ pageSize: 50, pageToken: cursor.token }), [cursor.token], session.admin);
  const [name, setName] = useState("");
  const [strategy, setStrategy] = useState(RetryStrategy.EXPONENTIAL);
  const [maxAttempts, setMaxAttempts] = useState("");
  const [interval, setInterval] = useState("");
  const [retention, setRetention] = useState("");
  const [error, setError] = useState("");
  const [created, setCreated] = useState<{ id: string; key: string } | null>(null);

  if (!session.admin) return <div className="empty">Projects are managed with the admin key.</div>;

  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError("");
    try {
      const resp = await registry.createProject({
        name,
        retryPolicy:
          maxAttempts || interval
            ? { strategy, maxAttempts: Number(maxAttempts) || 0, intervalSeconds: Number(interval) || 0 }
            : undefined,
        retention: Number(retention) || 0,
      });
      setCreated({ id: resp.project?.id ?? "", key: resp.key });
      setName("");
      list.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };

  return (
    <div>
      <h1>Projects</h1>
      {created && (
        <Secret label={`API key of project ${created.id}`} value={created.key} testid="project-key" onClose={() => setCreated(null)} />
      )}
      <form className="card form-row" onSubmit={create}>
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} data-testid="project-name" required />
        </label>
        <label>
          Retries
          <select value={strategy} onChange={(e) => setStrategy(Number(e.target.value))}>
            <option value={RetryStrategy.EXPONENTIAL}>exponential</option>
            <option value={RetryStrategy.LINEAR}>linear</option>
          </select>
        </label>
        <label>
          Max attempts
          <input type="number" min="0" value={maxAttempts} onChange={(e) => setMaxAttempts(e.target.value)} data-testid="project-max-attempts" />
        </label>
        <label>
          Interval (s)
          <input type="number" min="0" value={interval} onChange={(e) => setInterval(e.target.value)} />
        </label>
        <label>
          Retention (days)
          <input
            type="number"
            min="1"
            max="3650"
            placeholder="30"
            value={retention}
            onChange={(e) => setRetention(e.target.value)}
            data-testid="project-retention"
          />
        </label>
        <button type="submit" className="primary" data-testid="project-create">
          Create project
        </button>
      </form>
      <ErrorBox error={error || list.error} testid="projects-error" />
      <table data-testid="projects-table">
        <thead>
          <tr>
            <th>Name</th>
            <th>ID</th>
            <th>Retry policy</th>
            <th>Retention</th>
            <th>Created</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {list.data?.projects.map((p) => (
            <tr key={p.id} data-testid={`project-row-${p.id}`} className={p.id === session.projectId ? "selected" : ""}>
              <td>{p.name}</td>
              <td className="mono">{p.id}</td>
              <td>
                {p.retryPolicy
                  ? `${RetryStrategy[p.retryPolicy.strategy]?.toLowerCase()} · ${p.retryPolicy.maxAttempts} attempts · ${p.retryPolicy.intervalSeconds}s`
                  : "default"}
              </td>
              <td>{p.retention} days</td>
              <td>{fmtTime(p.createTime)}</td>
              <td>
                {p.id === session.projectId ? (
                  <span className="muted">current</span>
                ) : (
                  <button onClick={() => setProject(p.id)} data-testid={`project-use-${p.id}`}>
                    Open
                  </button>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <Pager page={cursor.page} nextToken={list.data?.nextPageToken} onNext={cursor.next} onPrev={cursor.prev} testid="projects-pager" />
    </div>
  );
}
