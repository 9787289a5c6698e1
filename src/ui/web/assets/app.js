// The page of `rust-p2p-chat --web`: one WebSocket to the local chat, JSON
// objects both ways. Everything a peer or the server says is data: it only
// ever reaches the page through textContent, createTextNode or attribute
// values, never as markup.

const MAX_LINES = 5000;
// A reader scrolled up keeps the lines above them, but no more than this:
// a peer that floods a room cannot make the page grow without end.
const MAX_LINES_HARD = 2 * MAX_LINES;
// A line of a megabyte would cost the page far more than it is worth
// reading; what is shown of it is cut here, and the rest is not kept.
const MAX_TEXT_CHARS = 16384;
const MAX_NICK_CHARS = 64;
const MAX_FILE_NAME_CHARS = 255;
// Each marked character is an element of its own: a line made of nothing
// else would cost one per character.
const MAX_CTL_SPANS = 256;
const HISTORY_LIMIT = 100;
const NEAR_EDGE_PX = 40;
const BACKOFF_FIRST_MS = 500;
const BACKOFF_MAX_MS = 5000;
const MAX_FILE_NOTICES = 50;
const MAX_TRANSFERS = 50;
// A background tab may draw no frames for minutes; its lines still go in.
const FLUSH_FALLBACK_MS = 1000;
// How long before asking again for the lines before the same line.
const RETRY_OLDER_MS = 2000;
const TOKEN_KEY = 'rust-p2p-chat-token';
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
  filePick: $('file-pick'),
  uploadStatus: $('upload-status'),
  uploadText: $('upload-text'),
  uploadProgress: $('upload-progress'),
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
  // A picked file being handed to the chat (one at a time).
  uploading: false,
  ws: null,
  attempt: 0,
  retryTimer: 0,
  peerId: null,
  // Where this page stands in the server's numbered feed: the run it
  // belongs to, the last number handled, and the first number said after
  // the page first connected (anything below it is a replay).
  epoch: null,
  lastSeq: null,
  live: null,
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
  flushFrame: 0,
  flushTimer: 0,
  transfers: new Map(),
  // The member the open safety number is shared with.
  verifyPeer: null,
  nextId: 0,
};

// When each line was written, for putting lines fetched later in their
// place.
const LINE_TS = new WeakMap();

// ---------------------------------------------------------------- helpers

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text != null) node.textContent = String(text);
  return node;
}

// Characters that would act rather than show: C0 and C1 controls, and
// the invisible ones that reorder or hide text (bidi embeddings,
// overrides and isolates, marks, zero-width spaces, separators, and the
// tag characters that can spell out hidden text). They are shown as a
// visible mark, as the terminal shows them, so a peer cannot make its
// line read backwards or hide part of it. The joiners and variation
// selectors that emoji are built with stay as they are. One match is a
// whole run of them, so a run costs one element however long it is.
const ACTIVE =
  /[\u{0}-\u{8}\u{a}-\u{1f}\u{7f}-\u{9f}\u{ad}\u{61c}\u{180e}\u{200b}\u{200e}\u{200f}\u{2028}-\u{202e}\u{2060}-\u{2064}\u{2066}-\u{206f}\u{feff}\u{fff9}-\u{fffb}\u{e0001}\u{e0020}-\u{e007f}]+/gu;
// The same less the line break, which the chat's own notices are made of.
const ACTIVE_BUT_NEWLINE =
  /[\u{0}-\u{8}\u{b}-\u{1f}\u{7f}-\u{9f}\u{ad}\u{61c}\u{180e}\u{200b}\u{200e}\u{200f}\u{2028}-\u{202e}\u{2060}-\u{2064}\u{2066}-\u{206f}\u{feff}\u{fff9}-\u{fffb}\u{e0001}\u{e0020}-\u{e007f}]+/gu;

function shownAs(c) {
  const code = c.codePointAt(0);
  if (code < 0x20) return `^${String.fromCharCode(code + 0x40)}`;
  if (code === 0x7f) return '^?';
  return `\\u{${code.toString(16)}}`;
}

function namesOf(run) {
  let names = '';
  for (const c of run) names += shownAs(c);
  return names;
}

// At most `max` characters of `text` (whole code points), and how many
// more there were.
function cut(text, max) {
  const value = String(text ?? '');
  // Fewer UTF-16 units than `max` is fewer characters too: the common case
  // costs no walk.
  if (value.length <= max) return { shown: value, more: 0 };
  let end = 0;
  let count = 0;
  while (end < value.length && count < max) {
    end += value.codePointAt(end) > 0xffff ? 2 : 1;
    count += 1;
  }
  let more = 0;
  for (let i = end; i < value.length; i += 1) {
    const unit = value.charCodeAt(i);
    // The second half of a pair is the same character as the first.
    if (unit < 0xdc00 || unit > 0xdfff) more += 1;
  }
  return { shown: value.slice(0, end), more };
}

// A span of peer text, made inert: plain text nodes, and each run of
// active characters as a marked span of the text that names them. Past
// MAX_CTL_SPANS runs the names go in as plain text: still visible, still
// inert, without an element each.
function inertSpan(className, text, { newlines = false } = {}) {
  const span = el('span', className);
  const value = String(text ?? '');
  const active = newlines ? ACTIVE_BUT_NEWLINE : ACTIVE;
  let last = 0;
  let marks = 0;
  for (const match of value.matchAll(active)) {
    if (match.index > last) span.append(document.createTextNode(value.slice(last, match.index)));
    const names = namesOf(match[0]);
    if (marks < MAX_CTL_SPANS) span.append(el('span', 'ctl', names));
    else span.append(document.createTextNode(names));
    marks += 1;
    last = match.index + match[0].length;
  }
  if (last < value.length) span.append(document.createTextNode(value.slice(last)));
  return span;
}

// Peer text cut to `max` characters, made inert, and followed by a note of
// what was left out; the nodes to append.
function cutText(className, text, max, options) {
  const { shown, more } = cut(text, max);
  const nodes = [inertSpan(className, shown, options)];
  if (more > 0) {
    nodes.push(el('span', 'cut-note', `… ${more.toLocaleString('en')} more character${more === 1 ? '' : 's'}`));
  }
  return nodes;
}

function inertNick(nick) {
  return inertSpan('nick', cut(nick ?? '?', MAX_NICK_CHARS).shown);
}

// Coloured by `colourKey` (the author's peer ID where known), so a nick
// taken by someone else does not take their colour too.
function nickSpan(nick, colourKey) {
  const span = inertNick(nick);
  span.classList.add(nickColour(colourKey ?? nick ?? ''));
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

function tokenInHash() {
  return location.hash.startsWith('#') ? location.hash.slice(1) : '';
}

function storeToken(token) {
  try {
    sessionStorage.setItem(TOKEN_KEY, token);
  } catch {
    // Storage refused (a private window's quota): a reload will need the
    // link again, nothing worse.
  }
}

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? '';
  } catch {
    return '';
  }
}

// The token in the link is taken out of the address bar at once, so it
// does not stay in the browser's history, a bookmark or a screenshot; the
// tab keeps it for a reload.
function takeTokenFromHash() {
  const token = tokenInHash();
  if (!token) return '';
  storeToken(token);
  history.replaceState(null, '', location.pathname);
  return token;
}

// Where to read on from: the frame after the last one handled, or, when
// none came since the page connected, the first said after that.
function socketUrl() {
  let url = `ws://${location.host}/ws?token=${encodeURIComponent(state.token)}`;
  const next = state.lastSeq != null ? state.lastSeq + 1 : state.live;
  if (state.epoch != null && next != null) url += `&since=${encodeURIComponent(state.epoch)}:${next}`;
  return url;
}

function connect() {
  clearTimeout(state.retryTimer);
  let ws;
  try {
    ws = new WebSocket(socketUrl());
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
  // A request of the old socket may or may not have reached the chat: it
  // is asked again rather than waited for. An answer that comes all the
  // same matches nothing and is merged or dropped.
  for (const room of state.rooms.values()) {
    room.pending = undefined;
    room.lastBefore = undefined;
    clearTimeout(room.retryOlder);
    room.retryOlder = 0;
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
  const token = takeTokenFromHash();
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
  // Frames of the shared feed are numbered; the others (hello, the feed
  // marker, errors in answer to this page's commands) are for this page
  // alone.
  const seq = Number.isSafeInteger(event.seq) && event.seq >= 0 ? event.seq : null;
  if (seq != null) {
    // A page that fell behind is replayed from further back than it had
    // read: what it handled already would show twice.
    if (state.lastSeq != null && seq <= state.lastSeq) return;
    state.lastSeq = seq;
  }
  const replay = seq != null && state.live != null && seq < state.live;
  const handler = HANDLERS[event.type];
  if (handler) handler(event, replay);
}

// Right after hello: where the feed stands for this connection. A resumed
// connection simply reads on; `gap` says frames may have been missed (a
// new page, a restarted chat, a page that fell behind), so every room
// shown reloads its latest lines from the history and merges them.
function onFeed(event) {
  const epoch = String(event.epoch ?? '');
  const live = Number.isSafeInteger(event.live) && event.live >= 0 ? event.live : 0;
  if (epoch !== state.epoch) {
    // Another run numbers its frames afresh.
    state.epoch = epoch;
    state.lastSeq = null;
    state.live = live;
  } else {
    // What was said before this page first connected stays a replay
    // however often it reconnects.
    state.live = Math.max(state.live ?? 0, live);
  }
  if (event.gap) reloadShownRooms();
}

function reloadShownRooms() {
  for (const room of state.rooms.values()) {
    if (room.name && room.loaded) askHistory(room, null);
  }
}

// Asks for a page of a room's history: the latest (`before` null) or the
// lines just before a line. The answer goes to every open page; the one
// in flight is what tells this page's answer from the others'.
function askHistory(room, before) {
  if (!send({ type: 'history', room: room.name, before, limit: HISTORY_LIMIT })) return false;
  room.pending = before;
  return true;
}

const HANDLERS = {
  hello: onHello,
  feed: onFeed,
  line: onLine,
  history: onHistory,
  delivered: onDelivered,
  member_joined: (e, replay) => onMemberChange(e, 'joined', replay),
  member_left: (e, replay) => onMemberChange(e, 'left', replay),
  members: onMembers,
  rooms: onRooms,
  safety_number: onSafetyNumber,
  // The member list says who is verified: asked again once someone is.
  trusted: (e, replay) => {
    const member = selectedRoom()?.members?.find((m) => m.peer_id === e.peer_id);
    addSystem(`Marked ${member ? cut(member.nick, MAX_NICK_CHARS).shown : e.peer_id} as verified`);
    if (state.selected && !replay) send({ type: 'members' });
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
    // The latest page of its history was asked for, and came.
    requested: false,
    loaded: false,
    // The `before` of the history request in flight (null: the latest
    // page); undefined when none is.
    pending: undefined,
    // The last page asked for going back, when, and the timer that asks
    // again after an answer that said "not now".
    lastBefore: undefined,
    askedAt: 0,
    retryOlder: 0,
    // Lines fell out of the queue before they were shown: what the log
    // shows no longer runs on into them.
    overflowed: false,
    // No longer listed by the chat, still shown for its lines.
    left: false,
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
  const leftMark = el('span', 'left-mark', ' (left)');
  leftMark.hidden = true;
  button.append(leftMark);
  li.append(button, badge, description);
  Object.assign(room, { li, button, badge, description, leftMark });

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
  state.dirty.delete(general);
  drainQueue(general);
  const moved = document.createDocumentFragment();
  moved.append(...general.log.childNodes);
  room.log.append(moved);
  room.lineCount += general.lineCount;
  general.log.remove();
  // The room's own waiting lines are newer than the notices just moved.
  if (room.queue.length) markDirty(room);
}

function renderRoomHeader() {
  const room = selectedRoom();
  ui.roomTitle.textContent = room ? roomLabel(room.name) : 'Not in a room yet';
  const count = room?.memberCount;
  if (room?.left) ui.roomMeta.textContent = 'You left this room';
  else ui.roomMeta.textContent = count != null ? `${count} member${count === 1 ? '' : 's'}` : '';
  ui.message.placeholder = room ? `Message ${roomLabel(room.name)}` : 'Write a message';
}

// Room names are the chat's keys (`+lan` for the public room lan): the
// rooms, members and line events all name a room that way, so each names
// the same entry.
function onRooms(event, replay) {
  // A list from before this page connected is stale, and acting on it
  // (choosing, dropping rooms) would be wrong; the page asked for a fresh
  // one when it connected.
  if (replay) return;
  const list = (Array.isArray(event.rooms) ? event.rooms : []).filter(
    (entry) => entry != null && typeof entry.name === 'string',
  );
  const listed = new Set();
  let current = null;
  for (const entry of list) {
    const room = ensureRoom(roomKey(entry.name));
    listed.add(room.name);
    setLeft(room, false);
    if (Number.isFinite(entry.members)) room.memberCount = entry.members;
    if (entry.current) current = room.name;
  }
  dropUnlisted(listed);
  state.roomsAnswered = true;
  const moved = current != null && (state.selected == null || current !== state.serverCurrent);
  state.serverCurrent = current;
  if (moved) selectRoom(current);
  else {
    renderRoomHeader();
    if (state.selected) send({ type: 'members' });
  }
  for (const name of listed) {
    const room = state.rooms.get(name);
    if (room.requested) continue;
    room.requested = true;
    askHistory(room, null);
  }
}

// Rooms the chat no longer lists were left (here, in the terminal or in
// another page). The plain peer's never is listed; the room being read
// stays, marked, while it has lines to read.
function dropUnlisted(listed) {
  for (const room of [...state.rooms.values()]) {
    if (room.name === '' || listed.has(room.name)) continue;
    if (room.name === state.selected && room.lineCount > 0) setLeft(room, true);
    else removeRoom(room);
  }
}

function setLeft(room, left) {
  if (room.left === left) return;
  room.left = left;
  room.button.classList.toggle('left', left);
  room.leftMark.hidden = !left;
  if (room.name === state.selected) renderRoomHeader();
}

function removeRoom(room) {
  state.rooms.delete(room.name);
  state.dirty.delete(room);
  clearTimeout(room.retryOlder);
  room.li.remove();
  room.log.remove();
  if (state.serverCurrent === room.name) state.serverCurrent = null;
  if (state.selected !== room.name) {
    updateTitle();
    return;
  }
  // Nothing chosen: notices go to the general log until a room is.
  state.selected = null;
  generalLog().log.hidden = false;
  renderRoomHeader();
  renderMembers();
  updateTitle();
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
  if (Number.isFinite(line.ts_ms)) LINE_TS.set(node, line.ts_ms);
  node.append(timeSpan(line.ts_ms), nickSpan(line.nick, line.author));
  if (line.fingerprint != null) {
    const fp = el('span', 'fp', shortFp(line.fingerprint));
    fp.title = String(line.fingerprint);
    node.append(fp);
  }
  node.append(...cutText('text', line.text, MAX_TEXT_CHARS));
  if (own && isStatus(line.status)) {
    node.append(statusSpan(line.status));
    if (line.status !== 'delivered') room.undelivered.add(node);
  }
  if (line.id != null) room.ids.set(String(line.id), node);
  return node;
}

function isStatus(status) {
  return typeof status === 'string' && Object.hasOwn(STATUS_RANK, status);
}

// Statuses only move forward: a late "sent" must not undo "delivered".
function setStatus(node, room, status) {
  if (!isStatus(status)) return;
  const span = node.querySelector(':scope > .status');
  if (span && STATUS_RANK[span.dataset.status] >= STATUS_RANK[status]) return;
  const fresh = statusSpan(status);
  if (span) span.replaceWith(fresh);
  else node.append(fresh);
  if (status === 'delivered') room.undelivered.delete(node);
  else room.undelivered.add(node);
}

// The node already showing a line, if any.
function shownLine(room, line) {
  return line.id != null ? room.ids.get(String(line.id)) ?? null : null;
}

function onLine(line, replay) {
  const room = ensureRoom(roomKey(line.room));
  const existing = shownLine(room, line);
  if (existing) {
    if (line.status != null) setStatus(existing, room, line.status);
    return;
  }
  const history = Boolean(line.history);
  queueLine(room, buildLine(line, room, history));
  // Unread is what came while no one looked: not replays of what was
  // said before the page opened, and the room on screen counts too while
  // the page is hidden.
  const unseen = room.name !== state.selected || document.hidden;
  if (!history && !replay && !isOwn(line) && unseen) room.unread += 1;
}

function onDirect(event) {
  const room = noticeRoom();
  const node = el('div', 'line direct');
  node.append(
    timeSpan(null),
    nickSpan(event.nick),
    el('span', 'direct-mark', '(direct)'),
    ...cutText('text', event.text, MAX_TEXT_CHARS),
  );
  queueLine(room, node);
}

// The chat's own words, which may quote a peer's (a nick, a file name):
// inert like peer text, but keeping their line breaks.
function systemLine(text, kind) {
  const node = el('div', `line system ${kind}`);
  node.append(...cutText('text', text ?? '', MAX_TEXT_CHARS, { newlines: true }));
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

// Replays only tell what happened: the lists they would ask for again are
// asked for once when the page connects.
function onMemberChange(event, verb, replay) {
  const room = ensureRoom(roomKey(event.room));
  const who =
    event.nick != null
      ? cut(event.nick, MAX_NICK_CHARS).shown
      : event.peer_id
        ? String(event.peer_id).slice(0, 12)
        : 'someone';
  addSystem(`${who} ${verb}`, 'notice', room);
  if (replay) return;
  if (state.selected) send({ type: 'members' });
  send({ type: 'peers' });
}

// --------------------------------------------------- batching and scroll

function markDirty(room) {
  state.dirty.add(room);
  if (state.flushQueued) return;
  state.flushQueued = true;
  state.flushFrame = requestAnimationFrame(flush);
  // A hidden tab may draw no frame for a long while: its lines go in all
  // the same, and its queue does not sit full.
  state.flushTimer = setTimeout(flush, FLUSH_FALLBACK_MS);
}

// No more than MAX_LINES wait for a frame: beyond that the oldest waiting
// go at once, so a flood costs no more than a full log. What they were is
// still in the history, for scroll-back to load.
function queueLine(room, node) {
  room.queue.push(node);
  room.lineCount += 1;
  if (room.queue.length > MAX_LINES) dropQueued(room, room.queue.length - MAX_LINES);
  markDirty(room);
}

function dropQueued(room, count) {
  for (const node of room.queue.splice(0, count)) forget(room, node);
  room.lineCount -= count;
  room.overflowed = true;
  if (room.name) room.more = true;
}

// A line no longer shown: nothing keeps it.
function forget(room, node) {
  room.undelivered.delete(node);
  const id = node.dataset.id;
  if (id != null && room.ids.get(id) === node) room.ids.delete(id);
}

// Moves the waiting lines into the log. After some fell out of the queue,
// what the log showed no longer runs on into them: it is cleared, rather
// than show a hole no one would notice.
function drainQueue(room) {
  if (room.overflowed) {
    room.overflowed = false;
    clearShown(room);
  }
  if (room.queue.length === 0) return;
  const fragment = document.createDocumentFragment();
  for (const node of room.queue) fragment.append(node);
  room.queue = [];
  room.log.append(fragment);
}

function clearShown(room) {
  for (const node of [...room.log.children]) {
    if (node.classList.contains('line')) {
      forget(room, node);
      room.lineCount -= 1;
    }
    node.remove();
  }
  room.startMarker = null;
}

function nearBottom(log) {
  return log.scrollHeight - log.scrollTop - log.clientHeight <= NEAR_EDGE_PX;
}

// Many lines in one burst cost one layout per frame, not one per line.
function flush() {
  if (!state.flushQueued) return;
  state.flushQueued = false;
  cancelAnimationFrame(state.flushFrame);
  clearTimeout(state.flushTimer);
  for (const room of state.dirty) {
    const visible = !room.log.hidden;
    const stick = visible ? nearBottom(room.log) : room.stuck;
    drainQueue(room);
    // Trimming while someone reads old lines would pull them away; it
    // waits until they are back at the newest, up to a hard ceiling.
    if (stick || !visible) {
      trimOldest(room, MAX_LINES);
      room.stuck = true;
      if (visible) room.log.scrollTop = room.log.scrollHeight;
    } else if (room.lineCount > MAX_LINES_HARD) {
      keepPlace(room, () => trimOldest(room, MAX_LINES_HARD));
    }
    renderUnread(room);
  }
  state.dirty.clear();
  updateTitle();
}

// Leaves at most `keep` lines, dropping the oldest; scroll-back can load
// them again.
function trimOldest(room, keep) {
  let excess = room.lineCount - keep;
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
    forget(room, node);
  }
  if (room.name) room.more = true;
}

// The first node of a log at least partly in view (nodes are in order, so
// a binary search finds it without touching them all).
function topNode(log) {
  const nodes = log.children;
  const top = log.scrollTop;
  let low = 0;
  let high = nodes.length - 1;
  let found = null;
  while (low <= high) {
    const mid = (low + high) >> 1;
    const node = nodes[mid];
    if (node.offsetTop + node.offsetHeight > top) {
      found = node;
      high = mid - 1;
    } else {
      low = mid + 1;
    }
  }
  return found;
}

// Runs `change` (lines added or removed anywhere in the log) without
// moving what the reader sees: the node at the top of the view stays
// where it was, and a reader at the newest stays there.
function keepPlace(room, change) {
  const log = room.log;
  if (log.hidden) {
    change();
    return;
  }
  if (nearBottom(log)) {
    change();
    log.scrollTop = log.scrollHeight;
    return;
  }
  const anchor = topNode(log);
  const offset = anchor ? anchor.offsetTop - log.scrollTop : 0;
  change();
  if (anchor?.parentNode === log) log.scrollTop = anchor.offsetTop - offset;
  // The lines being read were dropped: the oldest left is nearest them.
  else if (anchor) log.scrollTop = 0;
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
    trimOldest(room, MAX_LINES);
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
  if (!room.name || room.log.hidden || !room.loaded || !room.more || room.pending !== undefined) return;
  if (room.log.scrollTop > NEAR_EDGE_PX) return;
  const before = oldestId(room);
  if (before == null) return;
  // The same question again at once would get the same answer.
  if (before === room.lastBefore && performance.now() - room.askedAt < RETRY_OLDER_MS) return;
  if (!askHistory(room, before)) return;
  room.lastBefore = before;
  room.askedAt = performance.now();
}

// "Nothing yet, but there is more" (the chat is still fetching older
// lines from a member): asked again in a moment.
function retryOlderLater(room) {
  if (room.retryOlder) return;
  room.retryOlder = setTimeout(() => {
    room.retryOlder = 0;
    room.askedAt = 0;
    maybeLoadOlder(room);
  }, RETRY_OLDER_MS);
}

// History answers go to every open page: one is this page's own only when
// it matches the request in flight for its room. The latest page of
// someone else's (another page's first load, a typed /history) is merged
// in where its lines belong; someone else's scroll-back is not this
// page's business.
function onHistory(event) {
  if (event.room == null) return;
  const key = roomKey(event.room);
  const before = event.before == null ? null : String(event.before);
  const lines = (Array.isArray(event.lines) ? event.lines : []).filter(
    (line) => line != null && typeof line === 'object',
  );
  const more = Boolean(event.more);
  const room = state.rooms.get(key);
  if (room && room.pending !== undefined && room.pending === before) {
    room.pending = undefined;
    if (before == null) takeLatest(room, lines, more);
    else takeOlder(room, lines, more);
    return;
  }
  if (before != null || lines.length === 0) return;
  mergeByTime(room ?? ensureRoom(key), lines);
}

// Lines of a page not shown yet (a line shown already may have a newer
// status).
function unseen(room, lines) {
  return lines.filter((line) => {
    const node = shownLine(room, line);
    if (node && line.status != null) setStatus(node, room, line.status);
    return !node;
  });
}

// The latest lines of a room: the first load fills an empty log; a reload
// (after a gap) merges into what is shown.
function takeLatest(room, lines, more) {
  room.loaded = true;
  room.requested = true;
  keepPlace(room, () => {
    drainQueue(room);
    if (room.ids.size === 0) {
      room.more = more;
      insertOlder(room, lines);
    } else {
      mergeLatest(room, lines, more);
    }
    if (!room.more) showHistoryStart(room);
  });
  maybeLoadOlder(room);
}

// A page the reader scrolled back for. The hard ceiling is not applied to
// it: each page is one the reader asked for, a hundred lines at a time.
function takeOlder(room, lines, more) {
  if (lines.length === 0 && more) {
    retryOlderLater(room);
    return;
  }
  room.more = more;
  let added = 0;
  keepPlace(room, () => {
    drainQueue(room);
    added = insertOlder(room, lines);
    if (!room.more) showHistoryStart(room);
  });
  if (added) maybeLoadOlder(room);
}

// Older lines go above everything shown, in order.
function insertOlder(room, lines) {
  const fragment = document.createDocumentFragment();
  let added = 0;
  for (const line of unseen(room, lines)) {
    // An id twice in one page shows once.
    if (shownLine(room, line)) continue;
    fragment.append(buildLine(line, room, true));
    added += 1;
  }
  room.log.insertBefore(fragment, room.startMarker ? room.startMarker.nextSibling : room.log.firstChild);
  room.lineCount += added;
  return added;
}

// A line of the latest page not shown goes before the next line of the
// page that is (so a page overlapping what is shown keeps its order), or
// at the bottom. A full page that shares no line with a log of lines
// leaves a hole between the two, which is said.
function mergeLatest(room, lines, more) {
  const anchors = new Array(lines.length).fill(null);
  let next = null;
  let overlap = false;
  for (let i = lines.length - 1; i >= 0; i -= 1) {
    const node = shownLine(room, lines[i]);
    if (node) {
      if (lines[i].status != null) setStatus(node, room, lines[i].status);
      next = node.parentNode === room.log ? node : null;
      overlap = true;
    } else {
      anchors[i] = next;
    }
  }
  if (!overlap && more && lines.length > 0) {
    room.log.append(el('div', 'history-gap', 'Some lines may be missing here'));
  }
  for (let i = 0; i < lines.length; i += 1) {
    if (shownLine(room, lines[i])) continue;
    const node = buildLine(lines[i], room, true);
    if (anchors[i]) anchors[i].before(node);
    else room.log.append(node);
    room.lineCount += 1;
  }
  // The whole history fits in the page: nothing is older.
  if (!more) room.more = false;
}

// Lines fetched by someone else go where their time puts them: before the
// first shown line written later, else at the bottom.
function mergeByTime(room, lines) {
  const fresh = unseen(room, lines);
  if (fresh.length === 0) return;
  keepPlace(room, () => {
    drainQueue(room);
    for (const line of fresh) {
      if (shownLine(room, line)) continue;
      const node = buildLine(line, room, true);
      const later = Number.isFinite(line.ts_ms) ? firstLineAfter(room, line.ts_ms) : null;
      if (later) later.before(node);
      else room.log.append(node);
      room.lineCount += 1;
    }
  });
}

function firstLineAfter(room, tsMs) {
  for (const node of room.log.children) {
    const ts = LINE_TS.get(node);
    if (ts != null && ts > tsMs) return node;
  }
  return null;
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
  // Always named: the room on screen may not be the chat's current one
  // (another page or the terminal moved it), and naming it leaves the
  // current room as it is.
  return sendOrWarn({ type: 'send', room, text });
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
    li.append(nickSpan(member.nick, member.peer_id));
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
    top.append(inertNick(peer.nick));
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

// A dialog is for what was just asked: one replayed from before the page
// opened is not opened again.
function onSafetyNumber(event, replay) {
  if (replay) return;
  // "Mark verified" marks the member this number is shared with, named by
  // peer ID: a bare /trust would mark whoever the chat's current room
  // holds by the time the button is clicked.
  state.verifyPeer = event.peer_id != null ? String(event.peer_id) : null;
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

function onInvite(event, replay) {
  if (replay) return;
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

// Every event of a transfer carries its number: the entry is found by it,
// never by the file's name, which the peer chooses.
function onTransfer(event) {
  const text = typeof event.text === 'string' ? event.text : '';
  const number = Number.isSafeInteger(event.number) ? event.number : null;
  if (number != null) updateTransfer(event, number);
  if (event.event === 'received' && event.name != null && event.path != null) {
    addFileNotice(`Received ${event.name} → ${event.path}`);
  } else if (number == null && text) {
    addFileNotice(text);
  }
  if (text) logTransferText(event, number, text);
}

function addFileNotice(text) {
  const li = el('li', 'transfer-notice');
  li.append(...cutText('notice-text', text, MAX_TEXT_CHARS, { newlines: true }));
  ui.fileNotices.prepend(li);
  while (ui.fileNotices.children.length > MAX_FILE_NOTICES) ui.fileNotices.lastElementChild.remove();
}

// Progress comes by tenths; one line per transfer, updated, keeps the log
// for conversation.
function logTransferText(event, number, text) {
  const room = noticeRoom();
  const entry = number != null ? state.transfers.get(number) : null;
  const kind = ['failed', 'offer_refused', 'not_offered'].includes(event.event) ? 'warning' : 'notice';
  const node = entry?.progressLine;
  if (event.event === 'progress' && node && (node.parentNode === room.log || room.queue.includes(node))) {
    node.replaceChildren(...cutText('text', text, MAX_TEXT_CHARS, { newlines: true }));
    return;
  }
  const added = addSystem(text, kind, room);
  if (entry) entry.progressLine = event.event === 'progress' ? added : null;
}

function makeTransfer(number) {
  const entry = { number, total: null, incoming: null, final: false, progressLine: null };
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
  pruneTransfers();
  return entry;
}

// At most MAX_TRANSFERS entries: the oldest that are over go first, then,
// if a peer floods the page with offers, the oldest of all.
function pruneTransfers() {
  const excess = state.transfers.size - MAX_TRANSFERS;
  if (excess <= 0) return;
  // A Map keeps the order entries were made in: oldest first.
  const entries = [...state.transfers.values()];
  const doomed = [...entries.filter((t) => t.final), ...entries.filter((t) => !t.final)].slice(0, excess);
  for (const entry of doomed) {
    entry.li.remove();
    state.transfers.delete(entry.number);
  }
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
  const view = Object.hasOwn(TRANSFER_VIEWS, word) ? TRANSFER_VIEWS[word] : { text: word };
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

function updateTransfer(event, number) {
  const entry = state.transfers.get(number) ?? makeTransfer(number);
  if (event.name != null) {
    entry.name.replaceChildren(inertSpan('file-name', cut(event.name, MAX_FILE_NAME_CHARS).shown));
  }
  if (event.size != null) {
    entry.total = Number(event.size);
    entry.size.textContent = humanSize(event.size);
  }
  showTransferState(entry, String(event.event ?? ''), event.done);
}

function onSendFile(event) {
  event.preventDefault();
  const to = ui.fileTo.value.trim();
  const picked = ui.filePick.files?.[0];
  if (picked) {
    upload(picked, to);
    return;
  }
  const path = ui.filePath.value.trim();
  if (!path) {
    addFileNotice('Choose a file, or give the path of one on this machine');
    return;
  }
  const command = { type: 'send_file', path };
  if (to) command.to = to;
  if (sendOrWarn(command)) ui.filePath.value = '';
}

// A browser cannot name a file on disk, so a picked file's bytes go to the
// chat (which writes them to its data directory and offers the file from
// there). XMLHttpRequest rather than fetch: it reports the upload's
// progress. The token goes in a header, never in the URL.
function upload(file, to) {
  if (state.uploading) {
    addFileNotice('Another file is being handed to the chat; wait for it to finish');
    return;
  }
  state.uploading = true;
  const params = new URLSearchParams({ name: file.name });
  if (to) params.set('to', to);
  const xhr = new XMLHttpRequest();
  xhr.open('POST', `/upload?${params}`);
  xhr.setRequestHeader('Authorization', `Bearer ${state.token}`);
  xhr.setRequestHeader('Content-Type', 'application/octet-stream');
  ui.uploadText.textContent = `Handing "${cut(file.name, MAX_FILE_NAME_CHARS).shown}" to the chat…`;
  ui.uploadProgress.value = 0;
  ui.uploadStatus.hidden = false;
  xhr.upload.addEventListener('progress', (e) => {
    if (e.lengthComputable && e.total > 0) ui.uploadProgress.value = Math.floor((e.loaded / e.total) * 100);
  });
  const done = (text) => {
    state.uploading = false;
    ui.uploadStatus.hidden = true;
    if (text) addFileNotice(text);
  };
  xhr.addEventListener('load', () => {
    if (xhr.status === 200) {
      ui.filePick.value = '';
      done('');
    } else {
      done(`Not sent: ${(xhr.responseText || `error ${xhr.status}`).trim()}`);
    }
  });
  xhr.addEventListener('error', () => done('Not sent: the chat could not be reached'));
  xhr.addEventListener('abort', () => done('Not sent: the upload was stopped'));
  xhr.send(file);
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
    const command = state.verifyPeer != null ? { type: 'trust', who: state.verifyPeer } : { type: 'trust' };
    if (sendOrWarn(command)) ui.verify.close();
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
  document.addEventListener('visibilitychange', onVisibilityChange);
  watchLogSize();
}

// Lines that came while the page was hidden were unread even in the room
// on screen; seen now.
function onVisibilityChange() {
  if (document.hidden) return;
  const room = selectedRoom();
  if (!room || room.unread === 0) return;
  room.unread = 0;
  renderUnread(room);
  updateTitle();
}

function main() {
  wire();
  generalLog().log.hidden = false;
  renderMembers();
  onPeers({ peers: [] });
  // The link's token, or, after a reload, the one this tab kept.
  startWithToken(takeTokenFromHash() || storedToken());
}

main();
