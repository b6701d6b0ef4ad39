// "More Actions" menus: a button that opens a list of actions (ARIA menu button pattern).
// Keyboard: Enter/Space/ArrowDown open and focus the first item; arrows move; Escape and Tab close.
// https://www.w3.org/WAI/ARIA/apg/patterns/menu-button/
import { h, uniqueId } from './dom.js';

let openMenu = null;

export function isMenuOpen() {
  return openMenu !== null;
}

function closeOpenMenu(returnFocus) {
  if (!openMenu) return;
  const { button, list } = openMenu;
  openMenu = null;
  list.hidden = true;
  button.setAttribute('aria-expanded', 'false');
  if (returnFocus) button.focus();
}

document.addEventListener('click', (event) => {
  if (openMenu && !openMenu.wrapper.contains(event.target)) closeOpenMenu(false);
});

/**
 * A More Actions menu. `label` names the button for assistive tech (e.g. "More actions for x");
 * `items` = [{label, onSelect, danger?}]; `focusKey` lets focus come back after a re-render.
 */
export function actionMenu({ label, items, focusKey }) {
  const listId = uniqueId('menu');
  const button = h('button', {
    type: 'button',
    class: 'button button-menu',
    'aria-haspopup': 'menu',
    'aria-expanded': 'false',
    'aria-controls': listId,
    'aria-label': label,
    dataset: focusKey ? { focusKey } : undefined,
  }, 'More Actions', h('span', { class: 'caret', 'aria-hidden': 'true' }, '▾'));
  const list = h('ul', { id: listId, class: 'menu', role: 'menu', 'aria-label': label });
  list.hidden = true;
  const wrapper = h('div', { class: 'menu-wrapper' }, button, list);
  const menuItems = items.map((item) => {
    const entry = h('button', {
      type: 'button',
      role: 'menuitem',
      tabindex: '-1',
      class: item.danger ? 'menu-item menu-item-danger' : 'menu-item',
      onclick: () => {
        closeOpenMenu(true);
        item.onSelect();
      },
    }, item.label);
    list.append(h('li', { role: 'none' }, entry));
    return entry;
  });

  const open = (focusIndex) => {
    if (openMenu && openMenu.list !== list) closeOpenMenu(false);
    openMenu = { button, list, wrapper };
    list.hidden = false;
    button.setAttribute('aria-expanded', 'true');
    const index = focusIndex < 0 ? menuItems.length - 1 : focusIndex;
    if (menuItems[index]) menuItems[index].focus();
  };

  button.addEventListener('click', () => {
    if (openMenu && openMenu.list === list) closeOpenMenu(true);
    else open(0);
  });
  button.addEventListener('keydown', (event) => {
    if (event.key === 'ArrowDown') {
      event.preventDefault();
      open(0);
    } else if (event.key === 'ArrowUp') {
      event.preventDefault();
      open(-1);
    }
  });
  list.addEventListener('keydown', (event) => {
    const index = menuItems.indexOf(document.activeElement);
    if (event.key === 'ArrowDown') {
      event.preventDefault();
      menuItems[(index + 1) % menuItems.length].focus();
    } else if (event.key === 'ArrowUp') {
      event.preventDefault();
      menuItems[(index - 1 + menuItems.length) % menuItems.length].focus();
    } else if (event.key === 'Home') {
      event.preventDefault();
      menuItems[0].focus();
    } else if (event.key === 'End') {
      event.preventDefault();
      menuItems[menuItems.length - 1].focus();
    } else if (event.key === 'Escape') {
      event.preventDefault();
      closeOpenMenu(true);
    } else if (event.key === 'Tab') {
      closeOpenMenu(false);
    }
  });
  return wrapper;
}
