import { useState, type FormEvent } from "react";
import { registry, errorText, fmtTime } from "../api";
import { ErrorBox, NeedProject, Secret, usePoll, useSession } from "../lib";

export function KeysPage() {
  const { session } = useSession();
  const projectId = session.projectId;
  const list = usePoll(() => registry.listAPIKeys({ projectId }), [projectId], !!projectId);
  const [name, setName] = useState("");
  const [error, setError] = useState("");
  const [created, setCreated] = useState("");
  if (!projectId) return <NeedProject />;
  const create = async (e: FormEvent) => {
    e.preventDefault();
    setError("");
    try {
      const resp = await registry.createAPIKey({ projectId, name });
      setCreated(resp.key);
      setName("");
      list.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  const revoke = async (keyId: string) => {
    if (!window.confirm("Revoke this key for good?")) return;
    try {
      await registry.revokeAPIKey({ projectId, keyId });
      list.reload();
    } catch (err) {
      setError(errorText(err));
    }
  };
  return (
    <div>
      <h1>API keys</h1>
      {created && <Secret label="New API key" value={created} testid="apikey-secret" onClose={() => setCreated("")} />}
      <form className="card form-row" onSubmit={create}>
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} data-testid="apikey-name" />
        </label>
        <button type="submit" className="primary" data-testid="apikey-create">
          Create key
        </button>
      </form>
      <ErrorBox error={error || list.error} />
      <table data-testid="apikeys-table">
        <thead>
          <tr>
            <th>Name</th>
            <th>Prefix</th>
            <th>Created</th>
            <th>Revoked</th>
            <th></th>
          </tr>
        </thead>
        <tbody>
          {list.data?.apiKeys.map((k) => (
            <tr key={k.id}>
              <td>{k.name}</td>
              <td className="mono">{k.prefix}</td>
              <td>{fmtTime(k.createTime)}</td>
              <td>{fmtTime(k.revokeTime)}</td>
              <td>{!k.revokeTime && <button className="danger" onClick={() => revoke(k.id)}>Revoke</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}
