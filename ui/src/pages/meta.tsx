import { useEffect, useState, type FormEvent } from "react";
import { registry, errorText, fmtTime } from "../api";
import { ErrorBox, NeedProject, Secret, usePoll, useSession } from "../lib";

// META_EVENT_TYPES are the meta event types, as internal/metaevent names them.
const META_EVENT_TYPES = [
  "delivery.failed",
  "delivery.attempt_failing",
  "delivery.recovered",
  "endpoint.created",
  "endpoint.updated",
  "endpoint.deleted",
  "endpoint.disabled",
  "endpoint.enabled",
  "endpoint.circuit_opened",
  "endpoint.circuit_closed",
];

// MetaEventsPage sets where the project's meta events go and which.
export function MetaEventsPage() {
  const { session } = useSession();
  const projectId = session.projectId;
  const project = usePoll(() => registry.getProject({ projectId }), [projectId], !!projectId);
  const current = project.data?.project?.metaEvents;
  const [url, setUrl] = useState("");
  const [types, setTypes] = useState<string[]>([]);
  const [enabled, setEnabled] = useState(true);
  const [after, setAfter] = useState("");
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState("");
  const [secret, setSecret] = useState("");
  const [saved, setSaved] = useState(false);

  // The form starts from the stored settings, once.
  useEffect(() => {
    if (loaded || !project.data) return;
    setLoaded(true);
    if (current) {
      setUrl(current.url);
      setTypes(current.eventTypes);
      setEnabled(current.enabled);
      setAfter(current.attemptFailingAfter ? String(current.attemptFailingAfter) : "");
    }
  }, [loaded, project.data, current]);

  if (!projectId) return <NeedProject />;

  const save = async (e: FormEvent) => {
    e.preventDefault();
    setError("");
    setSaved(false);
    try {
      const resp = await registry.setMetaEvents({ projectId, url, eventTypes: types, enabled, attemptFailingAfter: Number(after) || 0 });
      if (resp.metaEvents?.secret) setSecret(resp.metaEvents.secret);
      setSaved(true);
      project.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const rotate = async () => {
    if (!window.confirm("Replace the meta events' secret? The current one stops signing at once.")) return;
    setError("");
    try {
      const resp = await registry.rotateMetaEventsSecret({ projectId });
      setSecret(resp.metaEvents?.secret ?? "");
      project.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const toggle = (t: string) => setTypes(types.includes(t) ? types.filter((x) => x !== t) : [...types, t]);

  return (
    <div>
      <h1>Meta events</h1>
      <p className="muted">
        Webhooks hookmesh sends you about this project's deliveries and endpoints, signed with their own secret. No type
        ticked sends all of them.
      </p>
      {secret && <Secret label="Meta events secret" value={secret} testid="meta-secret" onClose={() => setSecret("")} />}
      <form className="card" onSubmit={save}>
        <div className="form-row">
          <label>
            URL
            <input value={url} onChange={(e) => setUrl(e.target.value)} data-testid="meta-url" required />
          </label>
          <label>
            Attempt failing after
            <input type="number" min="0" value={after} onChange={(e) => setAfter(e.target.value)} data-testid="meta-after" placeholder="3" />
          </label>
          <label>
            <input type="checkbox" checked={enabled} onChange={(e) => setEnabled(e.target.checked)} data-testid="meta-enabled" /> Enabled
          </label>
        </div>
        <div className="form-row">
          {META_EVENT_TYPES.map((t) => (
            <label key={t} className="mono">
              <input type="checkbox" checked={types.includes(t)} onChange={() => toggle(t)} data-testid={`meta-type-${t}`} /> {t}
            </label>
          ))}
        </div>
        <button type="submit" className="primary" data-testid="meta-save">
          Save
        </button>
        {current && (
          <button type="button" onClick={rotate} data-testid="meta-rotate">
            Rotate secret
          </button>
        )}
        {saved && <span className="muted" data-testid="meta-saved"> saved</span>}
      </form>
      <ErrorBox error={error || project.error} testid="meta-error" />
      {current && (
        <p data-testid="meta-current">
          {current.enabled ? "Sending" : "Not sending"} to <span className="mono">{current.url}</span>, updated{" "}
          {fmtTime(current.updateTime)}. Their deliveries are listed under the endpoint{" "}
          <span className="mono" data-testid="meta-endpoint">{current.endpointId}</span> on the Deliveries page.
        </p>
      )}
    </div>
  );
}
