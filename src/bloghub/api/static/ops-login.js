// Trades the operator token for an HttpOnly session cookie, then shows the dashboard.
// A refusal says what it is: a wrong token, or an address locked after too many tries
// (then the right token is refused too, until the wait is over).
function refusal(answer, said) {
  if (answer.status === 401) return 'That is not the operator token.';
  if (answer.status === 429) {
    const wait = Number(answer.headers.get('retry-after'));
    const when = wait > 0 ? ` Try again in ${wait} s.` : ' Try again later.';
    return `Too many tries from this address; no token is taken for now.${when}`;
  }
  return said || `The sign-in failed (${answer.status}); try again.`;
}

document.getElementById('login').addEventListener('submit', async (event) => {
  event.preventDefault();
  const token = document.getElementById('token').value;
  const message = document.getElementById('message');
  let answer;
  try {
    answer = await fetch('/ops/session', {
      method: 'POST', headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ token }), credentials: 'same-origin',
    });
  } catch (error) {
    message.textContent = 'The server could not be reached; try again.';
    return;
  }
  if (answer.status === 204) { window.location.reload(); return; }
  let said = '';
  try { said = (await answer.json()).error.message; } catch (error) { said = ''; }
  message.textContent = refusal(answer, said);
});
