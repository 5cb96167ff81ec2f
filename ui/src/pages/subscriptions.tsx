import { useState, type FormEvent } from "react";
import { registry, errorText, fmtTime, filterFieldText, filterFieldValue } from "../api";
import { RetryStrategy } from "../gen/hookmesh/registry/v1/registry_pb";
import { ErrorBox, Link, NeedProject, Pager, useCursor, usePoll, useSession } from "../lib";

export function SubscriptionsPage() {
  const { session } = useSession();
  const projectId = session.projectId;
  const [endpointFilter, setEndpointFilter] = useState("");
  const cursor = useCursor([endpointFilter, projectId]);
  const list = usePoll(
    () => registry.listSubscriptions({ projectId, endpointId: endpointFilter, pageSize: 50, pageToken: cursor.token }),
    [projectId, endpointFilter, cursor.token],
    !!projectId,
  );
  const endpoints = usePoll(() => registry.listEndpoints({ projectId, pageSize: 100 }), [projectId], !!projectId);
  const [error, setError] = useState("");
  if (!projectId) return <NeedProject />;
  const remove = async (id: string) => {
    if (!window.confirm("Delete this subscription?")) return;
    setError("");
    try {
      await registry.deleteSubscription({ projectId, subscriptionId: id });
      list.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <div>
      <h1>Subscriptions</h1>
      <CreateSubscription projectId={projectId} endpoints={endpoints.data?.endpoints.map((e) => ({ id: e.id, name: e.name || e.url })) ?? []} onCreated={list.reload} />
      <div className="filters">
        <label>
          Endpoint ID
          <input value={endpointFilter} onChange={(e) => setEndpointFilter(e.target.value)} placeholder="all endpoints" />
        </label>
      </div>
      <ErrorBox error={error || list.error} />
      <table data-testid="subscriptions-table">
        <thead>
          <tr>
            <th>Name</th>
            <th>Endpoint</th>
            <th>Event types</th>
            <th>Body filter</th>
            <th>Headers filter</th>
            <th>Retry policy</th>
            <th>Created</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {list.data?.subscriptions.map((s) => (
            <tr key={s.id} data-testid={`subscription-row-${s.id}`}>
              <td>{s.name}</td>
              <td className="mono">
                <Link to={`/endpoints/${s.endpointId}`}>{s.endpointId}</Link>
              </td>
              <td>{s.filter?.eventTypes.length ? s.filter.eventTypes.join(", ") : "all"}</td>
              <td className="mono small">{filterFieldText(s.filter?.body) || "—"}</td>
              <td className="mono small">{filterFieldText(s.filter?.headers) || "—"}</td>
              <td>{s.retryPolicy && s.retryPolicy.maxAttempts ? `${RetryStrategy[s.retryPolicy.strategy]?.toLowerCase()} · ${s.retryPolicy.maxAttempts}` : "project's"}</td>
              <td>{fmtTime(s.createTime)}</td>
              <td>
                <button className="danger" onClick={() => remove(s.id)} data-testid={`subscription-delete-${s.id}`}>
                  Delete
                </button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data && list.data.subscriptions.length === 0 && <div className="empty">No subscriptions.</div>}
      <Pager page={cursor.page} nextToken={list.data?.nextPageToken} onNext={cursor.next} onPrev={cursor.prev} testid="subscriptions-pager" />
    </div>
  );
}

// CreateSubscription edits a filter as event types and JSON text for the
// body and headers documents; the API validates them and names the path of
// what is wrong.
function CreateSubscription(props: { projectId: string; endpoints: { id: string; name: string }[]; onCreated: () => void }) {
  const [endpointId, setEndpointId] = useState("");
  const [name, setName] = useState("");
  const [eventTypes, setEventTypes] = useState("");
  const [body, setBody] = useState("");
  const [headers, setHeaders] = useState("");
  const [maxAttempts, setMaxAttempts] = useState("");
  const [error, setError] = useState("");
  const [done, setDone] = useState("");
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError("");
    setDone("");
    try {
      const filter = {
        eventTypes: eventTypes
          .split(/[\n,]/)
          .map((s) => s.trim())
          .filter(Boolean),
        body: filterFieldValue("body", body),
        headers: filterFieldValue("headers", headers),
      };
      const resp = await registry.createSubscription({
        projectId: props.projectId,
        endpointId,
        name,
        // body and headers are JSON text (or, on older APIs, JSON objects).
        // eslint-disable-next-line @typescript-eslint/no-explicit-any
        filter: filter as any,
        retryPolicy: maxAttempts ? { strategy: RetryStrategy.EXPONENTIAL, maxAttempts: Number(maxAttempts) } : undefined,
      });
      setDone(`Created ${resp.subscription?.id}.`);
      setName("");
      props.onCreated();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form className="card grid-form" onSubmit={submit} data-testid="subscription-form">
      <label>
        Endpoint
        <select value={endpointId} onChange={(e) => setEndpointId(e.target.value)} data-testid="subscription-endpoint">
          <option value="">choose an endpoint</option>
          {props.endpoints.map((e) => (
            <option key={e.id} value={e.id}>
              {e.name} ({e.id})
            </option>
          ))}
        </select>
      </label>
      <label>
        Name
        <input value={name} onChange={(e) => setName(e.target.value)} data-testid="subscription-name" />
      </label>
      <label>
        Event types <span className="muted">(one a line or comma-separated; "invoice.*" prefixes; empty: all)</span>
        <textarea rows={2} value={eventTypes} onChange={(e) => setEventTypes(e.target.value)} data-testid="subscription-event-types" />
      </label>
      <label>
        Max attempts <span className="muted">(empty: the project's policy)</span>
        <input type="number" min="0" value={maxAttempts} onChange={(e) => setMaxAttempts(e.target.value)} />
      </label>
      <label>
        Body filter <span className="muted">(JSON, e.g. {`{"amount": {"$gte": 100}}`})</span>
        <textarea className="mono" rows={4} value={body} onChange={(e) => setBody(e.target.value)} data-testid="subscription-body" />
      </label>
      <label>
        Headers filter <span className="muted">(JSON)</span>
        <textarea className="mono" rows={4} value={headers} onChange={(e) => setHeaders(e.target.value)} data-testid="subscription-headers" />
      </label>
      <ErrorBox error={error} testid="subscription-error" />
      {done && <div className="ok" data-testid="subscription-created">{done}</div>}
      <div className="form-actions">
        <button type="submit" className="primary" data-testid="subscription-create">
          Create subscription
        </button>
      </div>
    </form>
  );
}
