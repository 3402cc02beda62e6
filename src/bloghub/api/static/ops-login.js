// Trades the operator token for an HttpOnly session cookie, then shows the dashboard.
document.getElementById('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const token = document.getElementById('token').value;
  const answer = await fetch('/ops/session', {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token }), credentials: 'same-origin',
  });
  if (answer.status === 204) { window.location.reload(); return; }
  document.getElementById('message').textContent = 'That is not the operator token.';
});
