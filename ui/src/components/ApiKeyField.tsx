import { useState } from "react";
import { getStoredToken, setStoredToken } from "../api/auth";
import { useSocket } from "../ws/context";

/** The API key for servers that require one (stored in localStorage; REST header + WS ?token=). */
export function ApiKeyField() {
  const socket = useSocket();
  const [open, setOpen] = useState(false);
  const [value, setValue] = useState(getStoredToken() ?? "");
  if (!open) {
    return (
      <button type="button" className="link" onClick={() => setOpen(true)}>
        API key{getStoredToken() ? " ✓" : ""}
      </button>
    );
  }
  return (
    <form
      className="api-key"
      onSubmit={(e) => {
        e.preventDefault();
        setStoredToken(value.trim() || null);
        setOpen(false);
        socket.reconnectNow();
      }}
    >
      <label htmlFor="api-key">API key</label>
      <input id="api-key" type="password" value={value} onChange={(e) => setValue(e.target.value)} autoFocus />
      <button type="submit">Save</button>
      <button type="button" onClick={() => setOpen(false)}>
        Cancel
      </button>
    </form>
  );
}
