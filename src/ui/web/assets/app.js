// The page of `rust-p2p-chat --web`: one WebSocket to the local chat, JSON
// objects both ways. Everything a peer or the server says is data: it only
// ever reaches the page through textContent, createTextNode or attribute
// values, never as markup.

const MAX_LINES = 5000;
const HISTORY_LIMIT = 100;
const NEAR_EDGE_PX = 40;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 5000;
const MAX_FILE_NOTICES = 50;
const APP_NAME = 'rust-p2p-chat';
const SVG_NS = 'http://www.w3.org/2000/svg';
const STATUS_RANK = { queued: 0, sent: 1, delivered: 2 };
const STATUS_MARK = { queued: '◷', sent: '✓', delivered: '✓✓' };
const NICK_COLOURS = 6;

const $ = (id) => document.getElementById(id);

const ui = {
  conn: $('conn'),
  me: $('me'),
  peerCount: $('peer-count'),
  rooms: $('rooms'),
  joinForm: $('join-form'),
  joinRoom: $('join-room'),
  roomTitle: $('room-title'),
  roomMeta: $('room-meta'),
  log: $('log'),
  composer: $('composer'),
  message: $('message'),
  members: $('members'),
  memberCount: $('member-count'),
  peers: $('peers'),
  sendFileForm: $('send-file-form'),
  filePath: $('file-path'),
  fileTo: $('file-to'),
  transfers: $('transfers'),
  fileNotices: $('file-notices'),
  verify: $('verify'),
  safetyNumber: $('safety-number'),
  markVerified: $('mark-verified'),
  invite: $('invite'),
  ticket: $('ticket'),
  qr: $('qr'),
  copyTicket: $('copy-ticket'),
  copyStatus: $('copy-status'),
  toggleRooms: $('toggle-rooms'),
  toggleMembers: $('toggle-members'),
  roomsPanel: $('rooms-panel'),
  sidePanel: $('side-panel'),
  scrim: $('scrim'),
};

const state = {
  token: '',
  ws: null,
  attempt: 0,
  retryTimer: 0,
  peerId: null,
  rooms: new Map(),
  // Where notices go before any room is chosen; it hands them over to the
  // first room selected.
  general: null,
  selected: null,
  // The room the chat itself treats as current, as far as we know; used to
  // tell a move made elsewhere (a typed /join) from the person reading
  // another room.
  serverCurrent: null,
  roomsAnswered: false,
  dirty: new Set(),
  flushQueued: false,
  transfers: new Map(),
  nextId: 0,
};

// ---------------------------------------------------------------- helpers

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = String(text);
  return node;
}

// Characters that would act rather than show: C0 and C1 controls, and
// the invisible ones that reorder or hide text (bidi embeddings,
// overrides and isolates, marks, zero-width spaces, separators). They are
// shown as a visible mark, as the terminal shows them, so a peer cannot
// make its line read backwards or hide part of it. The joiners and
// variation selectors that emoji are built with stay as they are.
const ACTIVE = /[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\ufeff\ufff9-\ufffb]/g;

function shownAs(c) {
  const code = c.codePointAt(0);
  if (code < 0x20) return `^${String.fromCharCode(code + 0x40)}`;
  if (code === 0x7f) return '^?';
  return `\\u{${code.toString(16)}}`;
}

// A span of peer text, made inert: plain text nodes, and each active
// character as a marked span of the text that names it.
function inertSpan(className, text) {
  const span = el('span', className);
  const value = String(text ?? '');
  let last = 0;
  for (const match of value.matchAll(ACTIVE)) {
    if (match.index > last) span.append(document.createTextNode(value.slice(last, match.index)));
    const mark = el('span', 'ctl', shownAs(match[0]));
    span.append(mark);
    last = match.index + match[0].length;
  }
  if (last < value.length) span.append(document.createTextNode(value.slice(last)));
  return span;
}

function uid(prefix) {
  state.nextId += 1;
  return `${prefix}-${state.nextId}`;
}

function roomKey(room) {
  return room == null ? '' : String(room);
}

function roomLabel(name) {
  return name === '' ? 'Peer' : `#${name}`;
}

function shortFp(fingerprint) {
  return String(fingerprint).slice(0, 9);
}

function pad2(n) {
  return String(n).padStart(2, '0');
}

function humanSize(bytes) {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let value = Number(bytes) || 0;
  if (value < 1024) return `${value} B`;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function percent(done, size) {
  if (!size) return 100;
  return Math.min(100, Math.floor((Number(done) / Number(size)) * 100));
}

// A stable colour per author makes a busy room easier to follow; the
// palette lives in the stylesheet so both themes keep their contrast.
function nickColour(key) {
  let hash = 0;
  for (const ch of String(key)) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  return `nick-c${hash % NICK_COLOURS}`;
}

function isNarrow() {
  return window.matchMedia('(max-width: 700px)').matches;
}

// --------------------------------------------------------------- network

function connected() {
  return state.ws != null && state.ws.readyState === WebSocket.OPEN;
}

function send(command) {
  if (!connected()) return false;
  state.ws.send(JSON.stringify(command));
  return true;
}

// For what a person asked for: silently dropping it would look like the
// chat ignored them.
function warnNotConnected() {
  addSystem('Not connected: nothing was sent. Try again once the page says Connected.', 'warning');
}

function sendOrWarn(command) {
  if (send(command)) return true;
  warnNotConnected();
  return false;
}

function setConn(stateName, text) {
  ui.conn.dataset.state = stateName;
  ui.conn.textContent = text;
}

function readToken() {
  return location.hash.startsWith('#') ? location.hash.slice(1) : '';
}

function connect() {
  clearTimeout(state.retryTimer);
  let ws;
  try {
    ws = new WebSocket(`ws://${location.host}/ws?token=${encodeURIComponent(state.token)}`);
  } catch {
    scheduleReconnect();
    return;
  }
  state.ws = ws;
  // Events of a socket already replaced (after a new token) are stale.
  ws.addEventListener('open', () => {
    if (state.ws === ws) onOpen();
  });
  ws.addEventListener('message', (event) => {
    if (state.ws === ws && typeof event.data === 'string') onFrame(event.data);
  });
  ws.addEventListener('close', () => {
    if (state.ws !== ws) return;
    state.ws = null;
    scheduleReconnect();
  });
}

function scheduleReconnect() {
  setConn('reconnecting', 'Reconnecting…');
  // Answers asked for on the old socket will never come.
  for (const room of state.rooms.values()) {
    room.loading = false;
    room.lastBefore = undefined;
    if (!room.loaded) room.requested = false;
  }
  const delay = Math.min(BACKOFF_FIRST_MS * 2 ** Math.min(state.attempt, 10), BACKOFF_MAX_MS);
  state.attempt += 1;
  state.retryTimer = setTimeout(connect, delay);
}

function onOpen() {
  state.attempt = 0;
  setConn('connected', 'Connected');
  send({ type: 'rooms' });
  send({ type: 'peers' });
}

function startWithToken(token) {
  state.token = token;
  if (!token) {
    setConn('no-token', 'No token: open the link rust-p2p-chat printed (it ends in #TOKEN)');
    generalLog().log.append(
      el('p', 'empty-state', 'This page needs the link rust-p2p-chat printed when it started, with its #TOKEN at the end.'),
    );
    return;
  }
  document.querySelector('.empty-state')?.remove();
  setConn('connecting', 'Connecting…');
  connect();
}

// A newly pasted link only changes the hash, so the page does not reload.
function onHashChange() {
  const token = readToken();
  if (!token || token === state.token) return;
  const old = state.ws;
  state.ws = null;
  clearTimeout(state.retryTimer);
  if (old) old.close();
  state.attempt = 0;
  startWithToken(token);
}

function onFrame(data) {
  let event;
  try {
    event = JSON.parse(data);
  } catch {
    return;
  }
  if (!event || typeof event !== 'object') return;
  const handler = HANDLERS[event.type];
  if (handler) handler(event);
}

const HANDLERS = {
  hello: onHello,
  line: onLine,
  history: onHistory,
  delivered: onDelivered,
  member_joined: (e) => onMemberChange(e, 'joined'),
  member_left: (e) => onMemberChange(e, 'left'),
  members: onMembers,
  rooms: onRooms,
  safety_number: onSafetyNumber,
  // The member list says who is verified: asked again once someone is.
  trusted: (e) => {
    const member = selectedRoom()?.members?.find((m) => m.peer_id === e.peer_id);
    addSystem(`Marked ${member ? member.nick : e.peer_id} as verified`);
    if (state.selected) send({ type: 'members' });
  },
  invite: onInvite,
  transfer: onTransfer,
  peers: onPeers,
  direct: onDirect,
  notice: (e) => addSystem(e.text, e.level === 'warning' ? 'warning' : 'notice'),
  error: (e) => addSystem(e.text, 'error'),
};

// ----------------------------------------------------------------- rooms

function makeLog(name) {
  const log = el('div', 'room-log');
  if (name != null) log.dataset.room = name;
  log.hidden = true;
  ui.log.append(log);
  return log;
}

function makeRoom(name) {
  const room = {
    name,
    log: makeLog(name),
    ids: new Map(),
    queue: [],
    lineCount: 0,
    unread: 0,
    more: true,
    requested: false,
    loaded: false,
    loading: false,
    lastBefore: undefined,
    stuck: true,
    savedTop: 0,
    startMarker: null,
    undelivered: new Set(),
    members: null,
    memberCount: null,
  };
  room.log.addEventListener('scroll', () => onLogScroll(room), { passive: true });
  return room;
}

function ensureRoom(name) {
  let room = state.rooms.get(name);
  if (room) return room;
  room = makeRoom(name);
  state.rooms.set(name, room);
  addRoomButton(room);
  // Plain peers never appear in a rooms answer: their room is chosen as soon
  // as it exists.
  if (state.selected == null && state.roomsAnswered) selectRoom(name);
  return room;
}

function addRoomButton(room) {
  const li = el('li', 'room-item');
  const button = el('button', 'room', roomLabel(room.name));
  button.type = 'button';
  button.dataset.room = room.name;
  const badge = el('span', 'unread');
  badge.hidden = true;
  badge.setAttribute('aria-hidden', 'true');
  // The count is read with the button's name; a hidden element still
  // lends its text to aria-describedby.
  const description = el('span');
  description.id = uid('unread');
  description.hidden = true;
  button.setAttribute('aria-describedby', description.id);
  button.addEventListener('click', () => {
    selectRoom(room.name, { join: true });
    if (isNarrow()) {
      closePanels();
      ui.message.focus();
    }
  });
  li.append(button, badge, description);
  Object.assign(room, { li, button, badge, description });

  // Sorted, the plain peer first, so a room is found where the eye expects.
  const after = [...ui.rooms.children].find(
    (item) => item.firstElementChild.dataset.room.localeCompare(room.name) > 0,
  );
  ui.rooms.insertBefore(li, after ?? null);
}

function renderUnread(room) {
  if (!room.badge) return;
  room.badge.hidden = room.unread === 0;
  room.badge.textContent = String(room.unread);
  room.description.textContent = room.unread ? `${room.unread} unread` : '';
}

function updateTitle() {
  let total = 0;
  for (const room of state.rooms.values()) total += room.unread;
  document.title = total > 0 ? `(${total}) ${APP_NAME}` : APP_NAME;
}

function selectedRoom() {
  return state.selected == null ? null : state.rooms.get(state.selected) ?? null;
}

// The room whose log receives notices: the one on screen.
function noticeRoom() {
  return selectedRoom() ?? generalLog();
}

function generalLog() {
  if (!state.general) {
    state.general = makeRoom(null);
    state.general.more = false;
    state.general.log.classList.add('general');
    state.general.log.hidden = state.selected != null;
  }
  return state.general;
}

function selectRoom(name, { join = false } = {}) {
  const room = ensureRoom(name);
  const previous = selectedRoom();
  if (previous && previous !== room) {
    rememberScroll(previous);
    previous.log.hidden = true;
    previous.button.removeAttribute('aria-current');
  }
  state.selected = name;
  adoptGeneral(room);
  room.log.hidden = false;
  room.button.setAttribute('aria-current', 'true');
  room.unread = 0;
  renderUnread(room);
  updateTitle();
  restoreScroll(room);
  renderRoomHeader();
  renderMembers();
  if (name !== '') {
    // Clicking the room already shown and current would only make the chat
    // say so again.
    if (join && !(previous === room && state.serverCurrent === name)) {
      send({ type: 'command', line: `/join ${name}` });
      state.serverCurrent = name;
    }
    send({ type: 'members' });
  }
  maybeLoadOlder(room);
}

function adoptGeneral(room) {
  const general = state.general;
  if (!general) return;
  state.general = null;
  const moved = document.createDocumentFragment();
  moved.append(...general.log.childNodes);
  room.log.append(moved);
  room.lineCount += general.lineCount;
  room.queue.push(...general.queue);
  if (room.queue.length) markDirty(room);
  state.dirty.delete(general);
  general.log.remove();
}

function renderRoomHeader() {
  const room = selectedRoom();
  ui.roomTitle.textContent = room ? roomLabel(room.name) : 'Not in a room yet';
  const count = room?.memberCount;
  ui.roomMeta.textContent = count != null ? `${count} member${count === 1 ? '' : 's'}` : '';
  ui.message.placeholder = room ? `Message ${roomLabel(room.name)}` : 'Write a message';
}

function onRooms(event) {
  const list = Array.isArray(event.rooms) ? event.rooms : [];
  let current = null;
  for (const entry of list) {
    const room = ensureRoom(roomKey(entry.name));
    if (Number.isFinite(entry.members)) room.memberCount = entry.members;
    if (entry.current) current = room.name;
  }
  state.roomsAnswered = true;
  const moved = current != null && (state.selected == null || current !== state.serverCurrent);
  if (current != null) state.serverCurrent = current;
  if (moved) selectRoom(current);
  else {
    renderRoomHeader();
    if (state.selected) send({ type: 'members' });
  }
  for (const entry of list) {
    const room = state.rooms.get(roomKey(entry.name));
    if (room.requested) continue;
    room.requested = true;
    room.loading = true;
    send({ type: 'history', room: room.name, before: null, limit: HISTORY_LIMIT });
  }
}

function onJoinSubmit(event) {
  event.preventDefault();
  const name = ui.joinRoom.value.trim().replace(/^#/, '');
  if (!name) return;
  if (!sendOrWarn({ type: 'join', room: name })) return;
  send({ type: 'rooms' });
  ui.joinRoom.value = '';
}

// Arrow keys walk the room list, as in a listbox, without trapping Tab.
function onRoomsKeydown(event) {
  const buttons = [...ui.rooms.querySelectorAll('button.room')];
  const index = buttons.indexOf(document.activeElement);
  if (index < 0) return;
  const target = {
    ArrowDown: buttons[index + 1],
    ArrowUp: buttons[index - 1],
    Home: buttons[0],
    End: buttons[buttons.length - 1],
  }[event.key];
  if (!target) return;
  event.preventDefault();
  target.focus();
}

// ----------------------------------------------------------------- lines

function timeSpan(tsMs) {
  const known = Number.isFinite(tsMs);
  const date = new Date(known ? tsMs : Date.now());
  const span = el('span', 'time', `${pad2(date.getHours())}:${pad2(date.getMinutes())}`);
  span.title = known ? date.toLocaleString() : `Received ${date.toLocaleString()}`;
  return span;
}

function statusSpan(status) {
  const span = el('span', 'status');
  span.dataset.status = status;
  span.title = status;
  const mark = el('span', 'mark', STATUS_MARK[status] ?? status);
  mark.setAttribute('aria-hidden', 'true');
  span.append(mark, el('span', 'sr-only', status));
  return span;
}

function isOwn(line) {
  return line.status != null || (state.peerId != null && line.author === state.peerId);
}

function buildLine(line, room, history) {
  const own = isOwn(line);
  const node = el('div', 'line');
  if (own) node.classList.add('own');
  if (history) node.classList.add('history');
  if (line.id != null) node.dataset.id = String(line.id);
  const nick = inertSpan('nick', line.nick ?? '?');
  nick.classList.add(nickColour(line.author ?? line.nick ?? ''));
  node.append(timeSpan(line.ts_ms), nick);
  if (line.fingerprint != null) {
    const fp = el('span', 'fp', shortFp(line.fingerprint));
    fp.title = String(line.fingerprint);
    node.append(fp);
  }
  node.append(inertSpan('text', line.text ?? ''));
  if (own && line.status != null && line.status in STATUS_RANK) {
    node.append(statusSpan(line.status));
    if (line.status !== 'delivered') room.undelivered.add(node);
  }
  if (line.id != null) room.ids.set(String(line.id), node);
  return node;
}

// Statuses only move forward: a late "sent" must not undo "delivered".
function setStatus(node, room, status) {
  if (!(status in STATUS_RANK)) return;
  const span = node.querySelector(':scope > .status');
  if (span && STATUS_RANK[span.dataset.status] >= STATUS_RANK[status]) return;
  const fresh = statusSpan(status);
  if (span) span.replaceWith(fresh);
  else node.append(fresh);
  if (status === 'delivered') room.undelivered.delete(node);
  else room.undelivered.add(node);
}

function onLine(line) {
  const room = ensureRoom(roomKey(line.room));
  const id = line.id != null ? String(line.id) : null;
  const existing = id != null ? room.ids.get(id) : null;
  if (existing) {
    if (line.status != null) setStatus(existing, room, line.status);
    return;
  }
  const history = Boolean(line.history);
  queueLine(room, buildLine(line, room, history));
  if (!history && !isOwn(line) && room.name !== state.selected) room.unread += 1;
}

function onDirect(event) {
  const room = noticeRoom();
  const node = el('div', 'line direct');
  const nick = el('span', 'nick', event.nick ?? '?');
  nick.classList.add(nickColour(event.nick ?? ''));
  node.append(timeSpan(null), nick, el('span', 'direct-mark', '(direct)'), inertSpan('text', event.text ?? ''));
  queueLine(room, node);
}

function systemLine(text, kind) {
  const node = el('div', `line system ${kind}`);
  node.append(el('span', 'text', text ?? ''));
  return node;
}

function addSystem(text, kind = 'notice', room = noticeRoom()) {
  const node = systemLine(text, kind);
  queueLine(room, node);
  return node;
}

// With `session` and `through`, only our lines of that session numbered
// below `through` are held; the ids (room:ROOM/AUTHOR/SESSION/NUMBER) say
// which those are. Without them, every line of ours in the room is.
function onDelivered(event) {
  const room = state.rooms.get(roomKey(event.room));
  if (!room) return;
  for (const node of [...room.undelivered]) {
    if (event.session != null && event.through != null) {
      const parts = (node.dataset.id || '').split('/');
      const number = Number(parts[parts.length - 1]);
      if (parts.length < 4 || parts[parts.length - 2] !== event.session) continue;
      if (!(number < event.through)) continue;
    }
    setStatus(node, room, 'delivered');
  }
}

function onMemberChange(event, verb) {
  const room = ensureRoom(roomKey(event.room));
  const who = event.nick ?? (event.peer_id ? String(event.peer_id).slice(0, 12) : 'someone');
  addSystem(`${who} ${verb}`, 'notice', room);
  if (state.selected) send({ type: 'members' });
  send({ type: 'peers' });
}

// --------------------------------------------------- batching and scroll

function markDirty(room) {
  state.dirty.add(room);
  if (state.flushQueued) return;
  state.flushQueued = true;
  requestAnimationFrame(flush);
}

function queueLine(room, node) {
  room.queue.push(node);
  room.lineCount += 1;
  markDirty(room);
}

function nearBottom(log) {
  return log.scrollHeight - log.scrollTop - log.clientHeight <= NEAR_EDGE_PX;
}

// Many lines in one burst cost one layout per frame, not one per line.
function flush() {
  state.flushQueued = false;
  for (const room of state.dirty) {
    const visible = !room.log.hidden;
    const stick = visible ? nearBottom(room.log) : room.stuck;
    if (room.queue.length) {
      const fragment = document.createDocumentFragment();
      for (const node of room.queue) fragment.append(node);
      room.queue = [];
      room.log.append(fragment);
    }
    // Trimming while someone reads old lines would pull them away; it waits
    // until they are back at the newest.
    if (stick || !visible) {
      trimOldest(room);
      room.stuck = true;
      if (visible) room.log.scrollTop = room.log.scrollHeight;
    }
    renderUnread(room);
  }
  state.dirty.clear();
  updateTitle();
}

function trimOldest(room) {
  let excess = room.lineCount - MAX_LINES;
  if (excess <= 0) return;
  if (room.startMarker) {
    room.startMarker.remove();
    room.startMarker = null;
  }
  while (excess > 0) {
    const node = room.log.firstElementChild;
    if (!node) break;
    node.remove();
    if (!node.classList.contains('line')) continue;
    excess -= 1;
    room.lineCount -= 1;
    room.undelivered.delete(node);
    const id = node.dataset.id;
    if (id != null && room.ids.get(id) === node) room.ids.delete(id);
  }
  if (room.name) room.more = true;
}

function rememberScroll(room) {
  if (room.log.hidden) return;
  room.stuck = nearBottom(room.log);
  room.savedTop = room.log.scrollTop;
}

function restoreScroll(room) {
  room.log.scrollTop = room.stuck ? room.log.scrollHeight : room.savedTop;
}

function onLogScroll(room) {
  if (room.log.hidden) return;
  room.stuck = nearBottom(room.log);
  if (room.stuck && room.lineCount > MAX_LINES) {
    trimOldest(room);
    room.log.scrollTop = room.log.scrollHeight;
  }
  if (room.log.scrollTop <= NEAR_EDGE_PX) maybeLoadOlder(room);
}

// Lines pending in the queue are newer than anything shown, so the oldest
// shown id is the oldest in the log itself.
function oldestId(room) {
  for (const node of room.log.children) {
    if (node.dataset.id != null) return node.dataset.id;
  }
  return null;
}

function maybeLoadOlder(room) {
  if (!room.name || room.log.hidden || !room.loaded || !room.more || room.loading) return;
  if (room.log.scrollTop > NEAR_EDGE_PX) return;
  const before = oldestId(room);
  // Asking twice from the same line would get the same answer again.
  if (before == null || before === room.lastBefore) return;
  if (!send({ type: 'history', room: room.name, before, limit: HISTORY_LIMIT })) return;
  room.lastBefore = before;
  room.loading = true;
}

function onHistory(event) {
  const room = ensureRoom(roomKey(event.room));
  room.loading = false;
  room.loaded = true;
  room.requested = true;
  const fragment = document.createDocumentFragment();
  let added = 0;
  for (const line of Array.isArray(event.lines) ? event.lines : []) {
    if (line.id != null && room.ids.has(String(line.id))) continue;
    fragment.append(buildLine(line, room, true));
    added += 1;
  }
  room.more = Boolean(event.more);
  const log = room.log;
  const visible = !log.hidden;
  const height = log.scrollHeight;
  const top = log.scrollTop;
  const stick = visible && nearBottom(log);
  if (added) {
    log.insertBefore(fragment, room.startMarker ? room.startMarker.nextSibling : log.firstChild);
    room.lineCount += added;
  }
  if (!room.more) showHistoryStart(room);
  if (!visible) return;
  // Older lines go above: the line that was at the top stays where it was.
  if (stick) log.scrollTop = log.scrollHeight;
  else log.scrollTop = top + (log.scrollHeight - height);
  if (added) maybeLoadOlder(room);
}

function showHistoryStart(room) {
  if (room.startMarker) return;
  room.startMarker = el('div', 'history-start', `Start of the history of ${roomLabel(room.name)}`);
  room.log.prepend(room.startMarker);
}

// Keeps the newest lines in view when the log's box changes size (the
// composer growing, the window resized, the on-screen keyboard).
function watchLogSize() {
  if (!('ResizeObserver' in window)) return;
  new ResizeObserver(() => {
    const room = selectedRoom();
    if (room && room.stuck) room.log.scrollTop = room.log.scrollHeight;
  }).observe(ui.log);
}

// -------------------------------------------------------------- composer

function splitCommands(text) {
  return text
    .split('\n')
    .map((line) => line.trimEnd())
    .filter((line) => line.trim() !== '');
}

function sendText(text) {
  const room = state.selected;
  // The plain peer has no room name the chat knows: its text is said as
  // typed.
  if (text.startsWith('/') || room == null || room === '') {
    const lines = splitCommands(text);
    if (!connected()) {
      warnNotConnected();
      return false;
    }
    for (const line of lines) send({ type: 'command', line });
    if (lines.some((line) => /^\/(join|leave|part)\b/.test(line))) send({ type: 'rooms' });
    return true;
  }
  // Naming the room makes it the chat's current one, which the chat
  // announces: named only when it is not current already.
  if (room === state.serverCurrent) return sendOrWarn({ type: 'send', text });
  const sent = sendOrWarn({ type: 'send', room, text });
  if (sent) state.serverCurrent = room;
  return sent;
}

function submitMessage() {
  // A trailing blank line would be said as an empty line of its own.
  const text = ui.message.value.replace(/\n+$/, '');
  if (text.trim() === '') return;
  if (sendText(text)) {
    ui.message.value = '';
    autosize();
    const room = selectedRoom();
    if (room) {
      room.stuck = true;
      room.log.scrollTop = room.log.scrollHeight;
    }
  }
  ui.message.focus();
}

function onMessageKeydown(event) {
  // keyCode 229 is an input method still composing: its Enter picks a word.
  if (event.key !== 'Enter' || event.shiftKey || event.isComposing || event.keyCode === 229) return;
  event.preventDefault();
  submitMessage();
}

// The box grows with its text up to the stylesheet's max-height, then
// scrolls.
function autosize() {
  const box = ui.message;
  box.style.height = '';
  if (box.value === '') return;
  const borders = box.offsetHeight - box.clientHeight;
  box.style.height = `${box.scrollHeight + borders}px`;
}

// --------------------------------------------------------------- members

function onHello(event) {
  state.peerId = event.peer_id ?? null;
  if (event.fingerprint != null) {
    ui.me.textContent = shortFp(event.fingerprint);
    ui.me.title = `Your fingerprint: ${event.fingerprint}`;
  }
}

function onMembers(event) {
  const room = ensureRoom(roomKey(event.room));
  room.members = Array.isArray(event.members) ? event.members : [];
  room.memberCount = room.members.length;
  if (room.name === state.selected) {
    renderMembers();
    renderRoomHeader();
  }
}

function verifiedMark() {
  const mark = el('span', 'verified', '✓');
  mark.title = 'verified';
  mark.append(el('span', 'sr-only', ' verified'));
  return mark;
}

function renderMembers() {
  const room = selectedRoom();
  const members = room?.members;
  ui.members.replaceChildren();
  ui.memberCount.textContent = members ? `(${members.length})` : '';
  if (!members || members.length === 0) {
    ui.members.append(el('li', 'empty', room ? 'No one listed yet' : 'Choose a room'));
    return;
  }
  for (const member of members) {
    const li = el('li', 'member');
    if (member.peer_id != null) li.dataset.peer = String(member.peer_id);
    const nick = el('span', 'nick', member.nick ?? '?');
    nick.classList.add(nickColour(member.peer_id ?? member.nick ?? ''));
    li.append(nick);
    if (member.me) li.append(el('span', 'me', '(you)'));
    if (member.fingerprint != null) {
      const fp = el('span', 'fp', shortFp(member.fingerprint));
      fp.title = String(member.fingerprint);
      li.append(fp);
    }
    if (member.verified) li.append(verifiedMark());
    ui.members.append(li);
  }
}

function onPeers(event) {
  const peers = Array.isArray(event.peers) ? event.peers : [];
  ui.peerCount.textContent = String(peers.length);
  ui.peers.replaceChildren();
  if (peers.length === 0) {
    ui.peers.append(el('li', 'empty', 'No peers connected'));
    return;
  }
  for (const peer of peers) {
    const li = el('li', 'peer');
    const top = el('div', 'peer-top');
    top.append(el('span', 'nick', peer.nick ?? '?'));
    if (peer.fingerprint != null) top.append(el('span', 'fp', shortFp(peer.fingerprint)));
    const details = [peer.addr, peer.rtt_ms != null ? `${peer.rtt_ms} ms` : null, peer.path]
      .filter((part) => part != null && part !== '')
      .join(' · ');
    li.append(top, el('div', 'peer-details', details));
    ui.peers.append(li);
  }
}

// --------------------------------------------------------------- dialogs

function openDialog(dialog) {
  if (!dialog.open) dialog.showModal();
}

function onSafetyNumber(event) {
  const number = String(event.number ?? '');
  const groups = number.split(/\s+/).filter(Boolean);
  ui.safetyNumber.replaceChildren();
  if (groups.length === 12) {
    // Three rows of four groups, read aloud one row at a time; the spaces
    // between rows keep the text the number itself when copied.
    for (let row = 0; row < 3; row += 1) {
      if (row) ui.safetyNumber.append(document.createTextNode(' '));
      ui.safetyNumber.append(el('span', 'row', groups.slice(row * 4, row * 4 + 4).join(' ')));
    }
  } else {
    ui.safetyNumber.textContent = number;
  }
  openDialog(ui.verify);
}

function drawQr(rows) {
  ui.qr.replaceChildren();
  const valid =
    Array.isArray(rows) &&
    rows.length > 0 &&
    rows.every((row) => typeof row === 'string' && row.length === rows[0].length && /^[01]+$/.test(row));
  ui.qr.hidden = !valid;
  if (!valid) return;
  const quiet = 4;
  const width = rows[0].length + 2 * quiet;
  const height = rows.length + 2 * quiet;
  const svg = document.createElementNS(SVG_NS, 'svg');
  svg.setAttribute('viewBox', `0 0 ${width} ${height}`);
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', 'QR code of the invite ticket');
  svg.setAttribute('shape-rendering', 'crispEdges');
  svg.append(rect(0, 0, width, height, '#ffffff'));
  // One rect per run of dark modules keeps the drawing small.
  rows.forEach((row, y) => {
    for (let x = 0; x < row.length; ) {
      if (row[x] !== '1') {
        x += 1;
        continue;
      }
      const start = x;
      while (row[x] === '1') x += 1;
      svg.append(rect(start + quiet, y + quiet, x - start, 1, '#000000'));
    }
  });
  ui.qr.append(svg);
}

function rect(x, y, width, height, fill) {
  const node = document.createElementNS(SVG_NS, 'rect');
  for (const [name, value] of Object.entries({ x, y, width, height, fill })) {
    node.setAttribute(name, String(value));
  }
  return node;
}

function onInvite(event) {
  ui.ticket.value = String(event.ticket ?? '');
  ui.copyStatus.textContent = '';
  drawQr(event.qr);
  openDialog(ui.invite);
}

async function copyTicket() {
  try {
    await navigator.clipboard.writeText(ui.ticket.value);
    ui.copyStatus.textContent = 'Copied';
  } catch {
    // Without clipboard access the selection lets the person copy by hand.
    ui.ticket.select();
  }
}

// ----------------------------------------------------------------- files

// How each transfer event shows on its entry: the state's words, whether
// it has moved bytes, the buttons it offers, and whether it is over.
const TRANSFER_VIEWS = {
  offered: { text: 'Offered to you', incoming: true, actions: ['accept', 'reject'] },
  offer_sent: { text: 'Waiting for them to accept', incoming: false, actions: ['cancel'] },
  receiving: { text: 'Receiving', incoming: true, bytes: true, actions: ['cancel'] },
  progress: { text: null, bytes: true, actions: ['cancel'] },
  paused: { text: 'Paused until the peer is back', bytes: true, actions: ['cancel'] },
  received: { text: 'Received', final: true },
  sent: { text: 'Sent', final: true },
  declined: { text: 'Declined', final: true },
  cancelled: { text: 'Cancelled', final: true },
  failed: { text: 'Failed', final: true },
};

const TRANSFER_BUTTONS = {
  accept: ['Accept', 'accept primary'],
  reject: ['Reject', 'reject'],
  cancel: ['Cancel', 'cancel'],
};

function onTransfer(event) {
  const text = typeof event.text === 'string' ? event.text : '';
  if (event.number != null) {
    updateTransfer(event);
  } else if (event.event === 'received' && event.name != null) {
    addFileNotice(`Received ${event.name} → ${event.path ?? ''}`);
    finishByName(event.name, 'received');
  } else {
    if (text) addFileNotice(text);
    // These endings name the file, not the number.
    if (event.name != null && (event.event === 'sent' || event.event === 'declined')) {
      finishByName(event.name, event.event);
    }
  }
  if (text) logTransferText(event, text);
}

function addFileNotice(text) {
  ui.fileNotices.prepend(el('li', 'transfer-notice', text));
  while (ui.fileNotices.children.length > MAX_FILE_NOTICES) ui.fileNotices.lastElementChild.remove();
}

// Progress comes by tenths; one line per transfer, updated, keeps the log
// for conversation.
function logTransferText(event, text) {
  const room = noticeRoom();
  const entry = event.number != null ? state.transfers.get(event.number) : null;
  const kind = ['failed', 'offer_refused', 'not_offered'].includes(event.event) ? 'warning' : 'notice';
  const node = entry?.progressLine;
  if (event.event === 'progress' && node && (node.parentNode === room.log || room.queue.includes(node))) {
    node.firstElementChild.textContent = text;
    return;
  }
  const added = addSystem(text, kind, room);
  if (entry) entry.progressLine = event.event === 'progress' ? added : null;
}

function makeTransfer(number) {
  const entry = { number, title: null, total: null, incoming: null, final: false, progressLine: null };
  entry.li = el('li', 'transfer');
  entry.li.dataset.number = String(number);
  entry.name = el('span', 'name');
  entry.name.id = uid('transfer-name');
  entry.size = el('span', 'size');
  entry.status = el('span', 'state');
  entry.bar = el('div', 'bar');
  entry.bar.hidden = true;
  entry.progress = el('progress');
  entry.progress.setAttribute('aria-labelledby', entry.name.id);
  entry.pct = el('span', 'percent');
  entry.bar.append(entry.progress, entry.pct);
  entry.actions = el('div', 'transfer-actions');
  const head = el('div', 'transfer-head');
  head.append(entry.name, entry.size);
  entry.li.append(head, entry.status, entry.bar, entry.actions);
  ui.transfers.prepend(entry.li);
  state.transfers.set(number, entry);
  return entry;
}

function transferButton(entry, type) {
  const [label, className] = TRANSFER_BUTTONS[type];
  const button = el('button', className, label);
  button.type = 'button';
  // "Accept" alone says nothing in a list of files; the name completes it.
  button.setAttribute('aria-describedby', entry.name.id);
  button.addEventListener('click', () => {
    if (!sendOrWarn({ type, transfer: entry.number })) return;
    for (const other of entry.actions.querySelectorAll('button')) other.disabled = true;
  });
  return button;
}

function setProgress(entry, done, size) {
  if (size == null) return;
  entry.bar.hidden = false;
  entry.progress.max = Math.max(1, Number(size));
  entry.progress.value = Math.min(Number(done ?? 0), entry.progress.max);
  entry.pct.textContent = `${percent(done ?? 0, size)}%`;
}

function showTransferState(entry, word, done) {
  const view = TRANSFER_VIEWS[word] ?? { text: word };
  if (view.incoming != null) entry.incoming = view.incoming;
  entry.li.dataset.state = word;
  entry.status.textContent =
    view.text ?? (entry.incoming === false ? 'Sending' : entry.incoming ? 'Receiving' : 'In progress');
  if (view.bytes) setProgress(entry, done, entry.total);
  if ((word === 'received' || word === 'sent') && entry.total != null) {
    setProgress(entry, entry.total, entry.total);
  }
  entry.final = Boolean(view.final);
  const wanted = view.actions ?? [];
  const shown = [...entry.actions.children].map((button) => button.className.split(' ')[0]);
  // Progress repeats the same buttons; rebuilding them would drop focus.
  if (wanted.join() !== shown.join() || wanted.length === 0) {
    entry.actions.replaceChildren(...wanted.map((type) => transferButton(entry, type)));
  }
}

function updateTransfer(event) {
  const entry = state.transfers.get(event.number) ?? makeTransfer(event.number);
  if (event.name != null) {
    entry.title = String(event.name);
    entry.name.textContent = entry.title;
  }
  if (event.size != null) {
    entry.total = Number(event.size);
    entry.size.textContent = humanSize(event.size);
  }
  showTransferState(entry, String(event.event ?? ''), event.done);
}

// Endings without a number name the file: the newest open entry with that
// name is the one that ended.
function finishByName(name, word) {
  const entries = [...state.transfers.values()].reverse();
  const entry = entries.find((t) => t.title === name && !t.final) ?? entries.find((t) => t.title === name);
  if (entry) showTransferState(entry, word, null);
}

function onSendFile(event) {
  event.preventDefault();
  const path = ui.filePath.value.trim();
  if (!path) return;
  const to = ui.fileTo.value.trim();
  const command = { type: 'send_file', path };
  if (to) command.to = to;
  if (sendOrWarn(command)) ui.filePath.value = '';
}

// ------------------------------------------------- narrow-screen panels

const PANELS = () => [
  [ui.toggleRooms, ui.roomsPanel],
  [ui.toggleMembers, ui.sidePanel],
];

function setPanel(toggle, panel, open) {
  panel.classList.toggle('open', open);
  toggle.setAttribute('aria-expanded', String(open));
}

function togglePanel(toggle, panel) {
  const open = !panel.classList.contains('open');
  for (const [otherToggle, other] of PANELS()) setPanel(otherToggle, other, false);
  setPanel(toggle, panel, open);
  ui.scrim.hidden = !open;
  if (open) (panel.querySelector('[aria-current="true"]') ?? panel.querySelector('button, input'))?.focus();
}

function closePanels({ refocus = false } = {}) {
  for (const [toggle, panel] of PANELS()) {
    const wasOpen = panel.classList.contains('open');
    setPanel(toggle, panel, false);
    if (wasOpen && refocus) toggle.focus();
  }
  ui.scrim.hidden = true;
}

// ------------------------------------------------------------------ wiring

function wire() {
  ui.composer.addEventListener('submit', (event) => {
    event.preventDefault();
    submitMessage();
  });
  ui.message.addEventListener('keydown', onMessageKeydown);
  ui.message.addEventListener('input', autosize);
  ui.joinForm.addEventListener('submit', onJoinSubmit);
  ui.rooms.addEventListener('keydown', onRoomsKeydown);
  ui.sendFileForm.addEventListener('submit', onSendFile);
  $('verify-button').addEventListener('click', () => sendOrWarn({ type: 'command', line: '/verify' }));
  $('invite-button').addEventListener('click', () => sendOrWarn({ type: 'invite' }));
  ui.markVerified.addEventListener('click', () => {
    if (sendOrWarn({ type: 'command', line: '/trust' })) ui.verify.close();
  });
  ui.copyTicket.addEventListener('click', copyTicket);
  for (const button of document.querySelectorAll('.dialog-close')) {
    button.addEventListener('click', () => button.closest('dialog').close());
  }
  for (const [toggle, panel] of PANELS()) {
    toggle.addEventListener('click', () => togglePanel(toggle, panel));
  }
  ui.scrim.addEventListener('click', () => closePanels());
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !document.querySelector('dialog[open]')) closePanels({ refocus: true });
  });
  window.matchMedia('(max-width: 700px)').addEventListener('change', () => closePanels());
  window.addEventListener('hashchange', onHashChange);
  watchLogSize();
}

function main() {
  wire();
  generalLog().log.hidden = false;
  renderMembers();
  onPeers({ peers: [] });
  startWithToken(readToken());
}

main();
