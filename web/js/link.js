// The Link to space dialog: Space Search by number or name, or Browse building → floor → space.
import { api, seg } from './api.js';
import { h, uniqueId } from './dom.js';
import { openDialog, showDialogError } from './dialogs.js';
import { floorLabel, spaceLabel, spaceWhere } from './format.js';

const SEARCH_PAGE_SIZE = 20;

function itemsOf(data) {
  if (Array.isArray(data)) return data;
  return data && Array.isArray(data.items) ? data.items : [];
}

/**
 * Open the dialog for `calendar` of `accountId`. `onLinked(calendar, space)` runs after a link succeeded.
 */
export function openLinkDialog(accountId, calendar, onLinked) {
  openDialog({
    title: `Link ${calendar.email} to a space`,
    description: calendar.space
      ? `Now linked to ${spaceLabel(calendar.space)}. Linking another space replaces that link.`
      : 'Find the space by its number or name, or browse a building\'s floors.',
    className: 'dialog-wide',
    build: ({ body, footer, close, errorBox }) => {
      const link = async (space, button) => {
        button.disabled = true;
        showDialogError(errorBox, '');
        try {
          const updated = await api('PUT', `/api/accounts/${seg(accountId)}/calendars/${seg(calendar.email)}/space`,
            { json: { space_id: space.id } });
          close('linked');
          onLinked(updated, space);
        } catch (error) {
          button.disabled = false;
          showDialogError(errorBox, error.message);
          button.focus();
        }
      };

      const spaceList = (spaces, emptyText) => {
        if (!spaces.length) return [h('p', { class: 'empty' }, emptyText)];
        return [h('ul', { class: 'space-list' }, spaces.map((space) => {
          const label = spaceLabel(space) || space.id;
          const holder = space.linked && space.linked.email && space.linked.email !== calendar.email
            ? `Linked to ${space.linked.email}` : null;
          const current = calendar.space && calendar.space.id === space.id;
          const button = h('button', {
            type: 'button',
            class: 'button button-small',
            'aria-label': `Link ${label}`,
            disabled: current,
          }, current ? 'Linked' : 'Link');
          button.addEventListener('click', () => link(space, button));
          return h('li', { class: 'space-item' },
            h('div', { class: 'space-text' },
              h('span', { class: 'space-name' }, label),
              h('span', { class: 'sub' }, spaceWhere(space)),
              holder ? h('span', { class: 'sub warning-text' }, holder) : null),
            button);
        }))];
      };

      // Space Search
      const searchId = uniqueId('space-search');
      const searchInput = h('input', { id: searchId, type: 'search', name: 'q', autocomplete: 'off',
        placeholder: 'e.g. 3-014 or Orchard' });
      const searchResults = h('div', { class: 'space-results', 'aria-live': 'polite' });
      let searchToken = null;
      let searchQuery = '';
      const runSearch = async (more) => {
        if (!more) {
          searchQuery = searchInput.value.trim();
          searchToken = null;
        }
        if (!searchQuery) {
          searchResults.replaceChildren(h('p', { class: 'empty' }, 'Type a space number or name.'));
          return;
        }
        searchResults.setAttribute('aria-busy', 'true');
        try {
          const data = await api('GET', '/api/spaces', {
            query: { q: searchQuery, page_size: SEARCH_PAGE_SIZE, continuation_token: more ? searchToken : null },
          });
          const spaces = itemsOf(data);
          searchToken = data && data.continuation_token ? data.continuation_token : null;
          const moreButton = searchToken
            ? h('button', { type: 'button', class: 'button button-small', onclick: () => runSearch(true) }, 'More results')
            : null;
          const list = spaceList(spaces, `No space matches “${searchQuery}”.`);
          if (more) {
            const existing = searchResults.querySelector('ul.space-list');
            searchResults.querySelector('.more-results')?.remove();
            if (existing && spaces.length) existing.append(...list[0].children);
          } else {
            searchResults.replaceChildren(...list);
          }
          if (moreButton) searchResults.append(h('p', { class: 'more-results' }, moreButton));
        } catch (error) {
          searchResults.replaceChildren(h('p', { class: 'error-text' }, `Search failed: ${error.message}`));
        } finally {
          searchResults.removeAttribute('aria-busy');
        }
      };
      const searchForm = h('form', { class: 'form inline-form', role: 'search' },
        h('label', { for: searchId }, 'Space number or name'),
        h('div', { class: 'inline-controls' }, searchInput,
          h('button', { type: 'submit', class: 'button' }, 'Search')));
      searchForm.addEventListener('submit', (event) => {
        event.preventDefault();
        runSearch(false);
      });

      // Browse building → floor → space
      const buildingId = uniqueId('building');
      const floorId = uniqueId('floor');
      const buildingSelect = h('select', { id: buildingId }, h('option', { value: '' }, 'Loading buildings…'));
      const floorSelect = h('select', { id: floorId, disabled: true }, h('option', { value: '' }, 'Choose a building first'));
      const browseResults = h('div', { class: 'space-results', 'aria-live': 'polite' });
      const loadBuildings = async () => {
        try {
          const buildings = itemsOf(await api('GET', '/api/buildings'));
          buildingSelect.replaceChildren(h('option', { value: '' }, buildings.length ? 'Choose a building' : 'No buildings yet'),
            ...buildings.map((b) => h('option', { value: b.id || b.building_id }, b.name || b.building_name || b.id)));
        } catch (error) {
          buildingSelect.replaceChildren(h('option', { value: '' }, 'Buildings could not be loaded'));
          browseResults.replaceChildren(h('p', { class: 'error-text' }, error.message));
        }
      };
      buildingSelect.addEventListener('change', async () => {
        browseResults.replaceChildren();
        floorSelect.disabled = true;
        const building = buildingSelect.value;
        if (!building) {
          floorSelect.replaceChildren(h('option', { value: '' }, 'Choose a building first'));
          return;
        }
        floorSelect.replaceChildren(h('option', { value: '' }, 'Loading floors…'));
        try {
          const floors = itemsOf(await api('GET', `/api/buildings/${seg(building)}/floors`));
          floorSelect.replaceChildren(h('option', { value: '' }, floors.length ? 'Choose a floor' : 'No floors'),
            ...floors.map((f) => {
              const floor = typeof f === 'object' && f !== null ? f.floor : f;
              const count = typeof f === 'object' && f !== null && typeof f.space_count === 'number'
                ? ` (${f.space_count} spaces)` : '';
              return h('option', { value: String(floor) }, `${floorLabel(floor)}${count}`);
            }));
          floorSelect.disabled = false;
        } catch (error) {
          floorSelect.replaceChildren(h('option', { value: '' }, 'Floors could not be loaded'));
          browseResults.replaceChildren(h('p', { class: 'error-text' }, error.message));
        }
      });
      floorSelect.addEventListener('change', async () => {
        const floor = floorSelect.value;
        if (!floor) {
          browseResults.replaceChildren();
          return;
        }
        browseResults.setAttribute('aria-busy', 'true');
        try {
          const spaces = itemsOf(await api('GET',
            `/api/buildings/${seg(buildingSelect.value)}/floors/${seg(floor)}/spaces`));
          browseResults.replaceChildren(...spaceList(spaces, 'No spaces on this floor.'));
        } catch (error) {
          browseResults.replaceChildren(h('p', { class: 'error-text' }, error.message));
        } finally {
          browseResults.removeAttribute('aria-busy');
        }
      });

      body.append(
        h('section', { class: 'dialog-section', 'aria-labelledby': `${searchId}-h` },
          h('h3', { id: `${searchId}-h` }, 'Space Search'), searchForm, searchResults),
        h('section', { class: 'dialog-section', 'aria-labelledby': `${buildingId}-h` },
          h('h3', { id: `${buildingId}-h` }, 'Browse'),
          h('div', { class: 'browse-controls' },
            h('div', { class: 'field' }, h('label', { for: buildingId }, 'Building'), buildingSelect),
            h('div', { class: 'field' }, h('label', { for: floorId }, 'Floor'), floorSelect)),
          browseResults),
      );
      footer.append(h('button', { type: 'button', class: 'button', onclick: () => close('cancel') }, 'Close'));
      loadBuildings();
    },
  });
}
