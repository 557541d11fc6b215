/* The client of this server's JSON API (/api/...): api(path, options) fetches and parses
 * the answer, and throws an ApiError with the server's one-line message when it refuses.
 */

export class ApiError extends Error {}

export async function api(path, options) {
  const response = await fetch(path, options);
  let body = null;
  try { body = await response.json(); } catch (err) { body = null; }
  if (!response.ok) {
    throw new ApiError((body && (body.message || body.detail)) || `${response.status} ${response.statusText}`);
  }
  return body;
}
