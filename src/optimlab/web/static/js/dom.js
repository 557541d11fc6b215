/* Small DOM helpers: $ (querySelector), el (build an element with attributes, listeners and
 * children), and the two places the page talks to the user: the status line and the message
 * under the map.
 */

export const $ = (selector, root = document) => root.querySelector(selector);

export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") node.className = value;
    else if (key === "text") node.textContent = value;
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child !== null && child !== undefined) node.append(child);
  }
  return node;
}

// Disable `button` while its work runs; returns the function that enables it again. Chromium
// moves the focus of a disabled button to the page's body: a button that had the focus gets
// it back (unless the user has moved it elsewhere meanwhile), so a keyboard user stays put.
export function busy(button) {
  const focused = document.activeElement === button;
  button.disabled = true;
  return () => {
    button.disabled = false;
    const now = document.activeElement;
    if (focused && (!now || now === document.body)) button.focus();
  };
}

// the status line when nothing has been raced with the configuration shown
export const READY = "ready: pick optimizers, click a start, race";
export function setStatus(text) { $("#status").textContent = text; }
export function showMessage(text) { $("#message").textContent = text || ""; }
