import { useState, type FormEvent } from "react";
import { registry, status, errorText, fmtTime } from "../api";
import { EndpointStatus, SignatureAlgorithm, type Endpoint } from "../gen/hookmesh/registry/v1/registry_pb";
import { DeliveryStatus } from "../gen/hookmesh/status/v1/status_pb";
import { DeliveryBadge, EndpointBadge, ErrorBox, Link, NeedProject, Pager, Secret, useCursor, useNav, usePoll, useSession } from "../lib";
import { DeliveriesTable } from "./deliveries";

export function EndpointsPage() {
  const { session } = useSession();
  const projectId = session.projectId;
  // A portal token sees its owner's endpoints only, and creates them as
  // the owner's.
  const portal = !!session.portal;
  const [owner, setOwner] = useState("");
  const cursor = useCursor([owner, projectId]);
  const list = usePoll(
    () => registry.listEndpoints({ projectId, ownerId: owner, pageSize: 50, pageToken: cursor.token }),
    [projectId, owner, cursor.token],
    !!projectId,
  );
  const [showCreate, setShowCreate] = useState(false);
  const [secret, setSecret] = useState<{ id: string; secret: string; ed25519: boolean } | null>(null);
  if (!projectId) return <NeedProject />;
  return (
    <div>
      <div className="title-row">
        <h1>Endpoints</h1>
        <button className="primary" onClick={() => setShowCreate(!showCreate)} data-testid="endpoint-new">
          New endpoint
        </button>
      </div>
      {secret && (
        <Secret
          label={secret.ed25519 ? `Ed25519 private key of ${secret.id} (its public key is on the endpoint's page)` : `Signing secret of ${secret.id}`}
          value={secret.secret}
          testid="endpoint-secret"
          onClose={() => setSecret(null)}
        />
      )}
      {showCreate && (
        <CreateEndpoint
          projectId={projectId}
          ownerId={session.portal?.ownerId}
          onCreated={(ep) => {
            setShowCreate(false);
            setSecret({ id: ep.id, secret: ep.secret, ed25519: ep.signatureAlgorithm === SignatureAlgorithm.ED25519 });
            list.reload();
          }}
        />
      )}
      {!portal && (
        <div className="filters">
          <label>
            Owner ID
            <input value={owner} onChange={(e) => setOwner(e.target.value)} placeholder="all owners" />
          </label>
        </div>
      )}
      <ErrorBox error={list.error} />
      <table data-testid="endpoints-table">
        <thead>
          <tr>
            <th>Name</th>
            <th>URL</th>
            <th>Owner</th>
            <th>Status</th>
            <th>ID</th>
            <th>Created</th>
          </tr>
        </thead>
        <tbody>
          {list.data?.endpoints.map((ep) => (
            <tr key={ep.id} data-testid={`endpoint-row-${ep.id}`}>
              <td>
                <Link to={`/endpoints/${ep.id}`} testid={`endpoint-link-${ep.id}`}>
                  {ep.name || "(unnamed)"}
                </Link>
              </td>
              <td className="mono">{ep.url}</td>
              <td>{ep.ownerId}</td>
              <td>
                <EndpointBadge status={ep.status} />
              </td>
              <td className="mono">{ep.id}</td>
              <td>{fmtTime(ep.createTime)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {list.data && list.data.endpoints.length === 0 && <div className="empty">No endpoints yet.</div>}
      <Pager page={cursor.page} nextToken={list.data?.nextPageToken} onNext={cursor.next} onPrev={cursor.prev} testid="endpoints-pager" />
    </div>
  );
}

function parseHeaders(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split("\n")) {
    if (line.trim() === "") continue;
    const i = line.indexOf(":");
    if (i <= 0) throw new Error(`custom headers: "${line}" is not "Name: value"`);
    out[line.slice(0, i).trim()] = line.slice(i + 1).trim();
  }
  return out;
}

function headersText(h: Record<string, string>): string {
  return Object.keys(h)
    .sort()
    .map((k) => `${k}: ${h[k]}`)
    .join("\n");
}

// CreateEndpoint creates an endpoint; with ownerId (the portal) its owner
// is that one, not asked.
function CreateEndpoint(props: { projectId: string; ownerId?: string; onCreated: (ep: Endpoint) => void }) {
  const [url, setUrl] = useState("");
  const [name, setName] = useState("");
  const [description, setDescription] = useState("");
  const [owner, setOwner] = useState(props.ownerId ?? "");
  const [timeout, setTimeoutS] = useState("");
  const [headers, setHeaders] = useState("");
  const [algorithm, setAlgorithm] = useState(SignatureAlgorithm.HMAC_SHA256);
  const [error, setError] = useState("");
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setError("");
    try {
      const resp = await registry.createEndpoint({
        projectId: props.projectId,
        url,
        name,
        description,
        ownerId: owner,
        timeoutSeconds: Number(timeout) || 0,
        customHeaders: parseHeaders(headers),
        signatureAlgorithm: algorithm,
      });
      if (resp.endpoint) props.onCreated(resp.endpoint);
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form className="card grid-form" onSubmit={submit} data-testid="endpoint-form">
      <label>
        URL
        <input value={url} onChange={(e) => setUrl(e.target.value)} data-testid="endpoint-url" placeholder="https://example.com/webhooks" />
      </label>
      <label>
        Name
        <input value={name} onChange={(e) => setName(e.target.value)} data-testid="endpoint-name" />
      </label>
      <label>
        Description
        <input value={description} onChange={(e) => setDescription(e.target.value)} />
      </label>
      {props.ownerId === undefined && (
        <label>
          Owner ID
          <input value={owner} onChange={(e) => setOwner(e.target.value)} data-testid="endpoint-owner" />
        </label>
      )}
      <label>
        Timeout (s)
        <input type="number" min="0" value={timeout} onChange={(e) => setTimeoutS(e.target.value)} placeholder="30" />
      </label>
      <label>
        Signature
        <select value={algorithm} onChange={(e) => setAlgorithm(Number(e.target.value) as SignatureAlgorithm)} data-testid="endpoint-algorithm">
          <option value={SignatureAlgorithm.HMAC_SHA256}>HMAC-SHA256 (shared secret, v1)</option>
          <option value={SignatureAlgorithm.ED25519}>Ed25519 (public key, v1a)</option>
        </select>
      </label>
      <label>
        Custom headers <span className="muted">(Name: value, one a line)</span>
        <textarea rows={2} value={headers} onChange={(e) => setHeaders(e.target.value)} />
      </label>
      <ErrorBox error={error} testid="endpoint-error" />
      <div className="form-actions">
        <button type="submit" className="primary" data-testid="endpoint-create">
          Create endpoint
        </button>
      </div>
    </form>
  );
}

export function EndpointPage(props: { id: string }) {
  const { session } = useSession();
  const { navigate } = useNav();
  const projectId = session.projectId;
  const ep = usePoll(() => registry.getEndpoint({ projectId, endpointId: props.id }), [projectId, props.id], !!projectId);
  const counts = usePoll(() => status.countDeliveries({ projectId, endpointId: props.id }), [projectId, props.id], !!projectId);
  const health = usePoll(() => status.getEndpointHealth({ projectId, endpointId: props.id }), [projectId, props.id], !!projectId);
  const [error, setError] = useState("");
  const [secret, setSecret] = useState({ value: "", ed25519: false });
  const [editing, setEditing] = useState(false);
  if (!projectId) return <NeedProject />;
  const e = ep.data?.endpoint;
  const act = async (f: () => Promise<unknown>) => {
    setError("");
    try {
      await f();
      ep.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const rotate = () =>
    act(async () => {
      const ttl = window.prompt("Keep the previous secret valid for how many seconds?", "3600");
      if (ttl === null) return;
      const resp = await registry.rotateEndpointSecret({ projectId, endpointId: props.id, previousSecretTtlSeconds: Number(ttl) || 0 });
      setSecret({ value: resp.endpoint?.secret ?? "", ed25519: resp.endpoint?.signatureAlgorithm === SignatureAlgorithm.ED25519 });
    });
  // Why hookmesh disabled the endpoint (a 410, a run of failures), if it did.
  const disabledReason = e?.disabledReason;
  const failures = counts.data?.counts
    .filter((c) => c.status === DeliveryStatus.FAILED || c.status === DeliveryStatus.RETRY)
    .reduce((n, c) => n + c.count, 0n);
  return (
    <div>
      <div className="breadcrumb">
        <Link to="/endpoints">Endpoints</Link> / <span className="mono">{props.id}</span>
      </div>
      <ErrorBox error={error || ep.error} testid="endpoint-page-error" />
      {secret.value && (
        <Secret
          label={secret.ed25519 ? "New Ed25519 private key" : "New signing secret"}
          value={secret.value}
          testid="endpoint-rotated-secret"
          onClose={() => setSecret({ value: "", ed25519: false })}
        />
      )}
      {e && (
        <>
          <div className="title-row">
            <h1>{e.name || "(unnamed endpoint)"}</h1>
            <div className="actions">
              {e.status === EndpointStatus.ACTIVE ? (
                <button onClick={() => act(() => registry.pauseEndpoint({ projectId, endpointId: e.id }))} data-testid="endpoint-pause">
                  Pause
                </button>
              ) : (
                <button onClick={() => act(() => registry.activateEndpoint({ projectId, endpointId: e.id }))} data-testid="endpoint-activate">
                  Activate
                </button>
              )}
              <button onClick={rotate} data-testid="endpoint-rotate">
                Rotate secret
              </button>
              <button onClick={() => setEditing(!editing)} data-testid="endpoint-edit">
                Edit
              </button>
              <button
                className="danger"
                onClick={async () => {
                  if (!window.confirm("Delete this endpoint and its subscriptions?")) return;
                  try {
                    await registry.deleteEndpoint({ projectId, endpointId: e.id });
                    navigate("/endpoints");
                  } catch (err) {
                    setError(errorText(err));
                  }
                }}
              >
                Delete
              </button>
            </div>
          </div>
          {editing && (
            <EditEndpoint
              endpoint={e}
              portal={!!session.portal}
              onSaved={() => {
                setEditing(false);
                ep.reload();
              }}
            />
          )}
          <div className="cards">
            <div className="card">
              <h3>Endpoint</h3>
              <dl>
                <dt>URL</dt>
                <dd className="mono" data-testid="endpoint-detail-url">{e.url}</dd>
                <dt>Owner</dt>
                <dd>{e.ownerId || "—"}</dd>
                <dt>Description</dt>
                <dd>{e.description || "—"}</dd>
                <dt>Timeout</dt>
                <dd>{e.timeoutSeconds ? `${e.timeoutSeconds} s` : "30 s (default)"}</dd>
                <dt>Rate limit</dt>
                <dd>{e.rateLimit && e.rateLimit.count ? `${e.rateLimit.count} per ${e.rateLimit.durationSeconds} s` : "none"}</dd>
                <dt>Custom headers</dt>
                <dd className="mono">{headersText(e.customHeaders) || "none"}</dd>
                <dt>Signature</dt>
                <dd data-testid="endpoint-algorithm">{e.signatureAlgorithm === SignatureAlgorithm.ED25519 ? "Ed25519 (v1a)" : "HMAC-SHA256 (v1)"}</dd>
                {e.publicKey && (
                  <>
                    <dt>Public key</dt>
                    <dd className="mono" data-testid="endpoint-public-key">
                      {e.publicKey}
                    </dd>
                  </>
                )}
                <dt>Updated</dt>
                <dd>{fmtTime(e.updateTime)}</dd>
              </dl>
            </div>
            <div className="card" data-testid="endpoint-health">
              <h3>Health</h3>
              <dl>
                <dt>Status</dt>
                <dd>
                  <EndpointBadge status={e.status} testid="endpoint-status" />
                </dd>
                {disabledReason && (
                  <>
                    <dt>Disabled because</dt>
                    <dd data-testid="endpoint-disabled-reason">{disabledReason}</dd>
                  </>
                )}
                <dt>Last 24 hours</dt>
                <dd data-testid="endpoint-recent">
                  {health.data
                    ? `${health.data.recentSuccesses} succeeded, ${health.data.recentFailures} failed attempts`
                    : health.error || "…"}
                </dd>
                <dt>Last success</dt>
                <dd data-testid="endpoint-last-success">
                  {health.data ? (health.data.lastSuccessTime ? fmtTime(health.data.lastSuccessTime) : "never") : "…"}
                </dd>
                <dt>Last failure</dt>
                <dd data-testid="endpoint-last-failure">
                  {health.data
                    ? health.data.lastFailureTime
                      ? `${fmtTime(health.data.lastFailureTime)}: ${
                          health.data.lastFailureStatusCode ? `HTTP ${health.data.lastFailureStatusCode}` : "no response"
                        }${health.data.lastError ? ` (${health.data.lastError})` : ""}`
                      : "never"
                    : "…"}
                </dd>
                <dt>Failing deliveries</dt>
                <dd data-testid="endpoint-failures">{failures === undefined ? "…" : String(failures)} (FAILED or RETRY)</dd>
                <dt>Deliveries</dt>
                <dd className="counts">
                  {counts.data?.counts.map((c) => (
                    <span key={c.status}>
                      <DeliveryBadge status={c.status} /> {String(c.count)}
                    </span>
                  ))}
                  {counts.data && counts.data.counts.length === 0 && "none yet"}
                </dd>
              </dl>
            </div>
          </div>
          <h2>Recent deliveries</h2>
          <DeliveriesTable projectId={projectId} filter={{ endpointId: e.id }} testid="endpoint-deliveries" />
        </>
      )}
    </div>
  );
}

// EditEndpoint edits an endpoint; in the portal (portal set) its owner
// cannot change, so it is not offered.
function EditEndpoint(props: { endpoint: Endpoint; portal?: boolean; onSaved: () => void }) {
  const e = props.endpoint;
  const [url, setUrl] = useState(e.url);
  const [name, setName] = useState(e.name);
  const [description, setDescription] = useState(e.description);
  const [owner, setOwner] = useState(e.ownerId);
  const [timeout, setTimeoutS] = useState(String(e.timeoutSeconds || ""));
  const [rateCount, setRateCount] = useState(String(e.rateLimit?.count || ""));
  const [rateDuration, setRateDuration] = useState(String(e.rateLimit?.durationSeconds || ""));
  const [headers, setHeaders] = useState(headersText(e.customHeaders));
  const [error, setError] = useState("");
  const submit = async (ev: FormEvent) => {
    ev.preventDefault();
    setError("");
    try {
      await registry.updateEndpoint({
        projectId: e.projectId,
        endpointId: e.id,
        url,
        name,
        description,
        ownerId: owner,
        timeoutSeconds: Number(timeout) || 0,
        rateLimit: { count: Number(rateCount) || 0, durationSeconds: Number(rateDuration) || 0 },
        customHeaders: parseHeaders(headers),
        replaceCustomHeaders: true,
      });
      props.onSaved();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <form className="card grid-form" onSubmit={submit} data-testid="endpoint-edit-form">
      <label>
        URL
        <input value={url} onChange={(ev) => setUrl(ev.target.value)} data-testid="endpoint-edit-url" />
      </label>
      <label>
        Name
        <input value={name} onChange={(ev) => setName(ev.target.value)} data-testid="endpoint-edit-name" />
      </label>
      <label>
        Description
        <input value={description} onChange={(ev) => setDescription(ev.target.value)} />
      </label>
      {!props.portal && (
        <label>
          Owner ID
          <input value={owner} onChange={(ev) => setOwner(ev.target.value)} />
        </label>
      )}
      <label>
        Timeout (s)
        <input type="number" min="0" value={timeout} onChange={(ev) => setTimeoutS(ev.target.value)} />
      </label>
      <label>
        Rate limit: requests
        <input type="number" min="0" value={rateCount} onChange={(ev) => setRateCount(ev.target.value)} />
      </label>
      <label>
        per seconds
        <input type="number" min="0" value={rateDuration} onChange={(ev) => setRateDuration(ev.target.value)} />
      </label>
      <label>
        Custom headers <span className="muted">(Name: value, one a line)</span>
        <textarea rows={2} value={headers} onChange={(ev) => setHeaders(ev.target.value)} />
      </label>
      <ErrorBox error={error} testid="endpoint-edit-error" />
      <div className="form-actions">
        <button type="submit" className="primary" data-testid="endpoint-save">
          Save
        </button>
      </div>
    </form>
  );
}
