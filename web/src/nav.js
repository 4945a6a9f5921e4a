// nav.js: in-app links and the page's location.
import { useEffect, useState } from 'preact/hooks'

// go shows path (with its query) without reloading the page.
export function go(path) {
  history.pushState(null, '', path)
  dispatchEvent(new PopStateEvent('popstate'))
}

// navigate follows an in-app link without reloading the page.
export function navigate(e) {
  if (e.metaKey || e.ctrlKey || e.shiftKey || e.button !== 0) return
  e.preventDefault()
  go(e.currentTarget.getAttribute('href'))
}

// usePath is the page's path and query, kept in step with history.
export function usePath() {
  const [loc, setLoc] = useState(location.pathname + location.search)
  useEffect(() => {
    const on = () => setLoc(location.pathname + location.search)
    addEventListener('popstate', on)
    return () => removeEventListener('popstate', on)
  }, [])
  return loc
}
