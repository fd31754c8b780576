import { mount } from 'svelte'
import App from './App.svelte'
import Hooks from './Hooks.svelte'

const view = new URLSearchParams(location.search).get('view')
mount(view === 'hooks' ? Hooks : App, { target: document.getElementById('app')! })
