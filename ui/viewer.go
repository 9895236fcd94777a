package ui

import (
	"fmt"
	"strings"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/widget"
	"golang.org/x/net/html"

	"mailferry/core"
)

// View modes of the viewer's body.
const (
	viewText     = "Text"
	viewHTMLText = "HTML as text"
	viewHTMLRich = "HTML formatted"
	viewRaw      = "Source"
)

// viewer shows a migrated message as a user would see it: subject, from,
// date and text; an HTML part as plain text or formatted.
type viewer struct {
	msgs    []core.SampleView
	pick    *widget.Select
	mode    *widget.Select
	subject *widget.Label
	from    *widget.Label
	date    *widget.Label
	body    *widget.Label
	rich    *widget.RichText
	bodyBox *fyne.Container
}

func newViewer() *viewer {
	v := &viewer{}
	v.pick = widget.NewSelect(nil, nil)
	v.pick.PlaceHolder = "(no messages yet)"
	// A drop-down, not a row of radio buttons: the Check step must fit
	// an 800x600 screen.
	v.mode = widget.NewSelect([]string{viewText, viewHTMLText, viewHTMLRich, viewRaw}, nil)
	v.mode.SetSelected(viewText)
	v.subject = widget.NewLabel("")
	v.subject.TextStyle = fyne.TextStyle{Bold: true}
	v.subject.Wrapping = fyne.TextWrapWord
	v.from = widget.NewLabel("")
	v.from.Wrapping = fyne.TextWrapWord
	v.date = widget.NewLabel("")
	v.body = widget.NewLabel("")
	v.body.Wrapping = fyne.TextWrapWord
	v.body.Selectable = true
	v.rich = widget.NewRichText()
	v.rich.Wrapping = fyne.TextWrapWord
	v.bodyBox = container.NewStack(v.body)
	v.pick.OnChanged = func(string) { v.render() }
	v.mode.OnChanged = func(string) { v.render() }
	return v
}

func (v *viewer) content() fyne.CanvasObject {
	head := container.NewVBox(
		widget.NewLabelWithStyle("Message viewer", fyne.TextAlignLeading, fyne.TextStyle{Bold: true}),
		v.pick, v.subject, v.from, v.date, container.NewBorder(nil, nil, widget.NewLabel("Show as"), nil, v.mode), widget.NewSeparator())
	return container.NewBorder(head, nil, nil, nil, container.NewVScroll(v.bodyBox))
}

// set shows msgs (nil clears the viewer).
func (v *viewer) set(msgs []core.SampleView) {
	v.msgs = msgs
	var opts []string
	for _, m := range msgs {
		opts = append(opts, v.label(m))
	}
	v.pick.Options = opts
	if len(opts) > 0 {
		v.pick.SetSelected(opts[0])
	} else {
		v.pick.ClearSelected()
		v.render()
	}
}

func (v *viewer) label(m core.SampleView) string {
	if !m.Found {
		return m.Name + " — missing"
	}
	return m.Name + " — " + m.Subject
}

// render shows the selected message in the selected mode.
func (v *viewer) render() {
	var m *core.SampleView
	for i := range v.msgs {
		if v.label(v.msgs[i]) == v.pick.Selected {
			m = &v.msgs[i]
		}
	}
	v.bodyBox.Objects = []fyne.CanvasObject{v.body}
	if m == nil || !m.Found {
		v.subject.SetText("")
		v.from.SetText("")
		v.date.SetText("")
		v.body.SetText("")
		if m != nil {
			v.body.SetText("This sample was not found on Mailferry.")
		}
		v.bodyBox.Refresh()
		return
	}
	msg, err := core.ParseMessage(m.Raw)
	if err != nil {
		// Show what could be read, and why the rest could not.
		v.subject.SetText(msg.Subject)
		v.from.SetText("")
		v.date.SetText("")
		v.body.SetText(err.Error() + "\n\n" + string(m.Raw))
		v.bodyBox.Refresh()
		return
	}
	v.subject.SetText(msg.Subject)
	v.from.SetText("From: " + msg.From + "\nTo: " + msg.To)
	if msg.Date.IsZero() {
		v.date.SetText("Date: (none)")
	} else {
		v.date.SetText("Date: " + msg.Date.Format("Mon, 2 Jan 2006 15:04:05 -0700"))
	}
	switch v.mode.Selected {
	case viewHTMLText:
		if msg.HTML == "" {
			v.body.SetText("(this message has no HTML part)")
		} else {
			v.body.SetText(htmlToText(msg.HTML))
		}
	case viewHTMLRich:
		if msg.HTML == "" {
			v.body.SetText("(this message has no HTML part)")
		} else {
			v.rich.ParseMarkdown(htmlToMarkdown(msg.HTML))
			v.bodyBox.Objects = []fyne.CanvasObject{v.rich}
		}
	case viewRaw:
		v.body.SetText(string(m.Raw))
	default:
		text := msg.Text
		if text == "" && msg.HTML != "" {
			text = htmlToText(msg.HTML)
		}
		if len(msg.Attachments) > 0 {
			text += fmt.Sprintf("\n\n[other parts: %s]", strings.Join(msg.Attachments, ", "))
		}
		v.body.SetText(text)
	}
	v.bodyBox.Refresh()
}

// htmlToText renders HTML as readable plain text: block elements become
// line breaks, list items bullets, links "text <url>"; scripts, styles and
// the head are dropped.
func htmlToText(s string) string { return renderHTML(s, false) }

// htmlToMarkdown renders HTML as Markdown for widget.RichText: headings,
// bold, italics, lists and links keep their form.
func htmlToMarkdown(s string) string { return renderHTML(s, true) }

func renderHTML(s string, md bool) string {
	z := html.NewTokenizer(strings.NewReader(s))
	var b strings.Builder
	skip := 0
	var href []string
	newline := func(n int) {
		cur := b.String()
		have := len(cur) - len(strings.TrimRight(cur, "\n"))
		if len(strings.TrimSpace(cur)) == 0 {
			return
		}
		for i := have; i < n; i++ {
			b.WriteByte('\n')
		}
	}
	mark := func(m string) {
		if md {
			b.WriteString(m)
		}
	}
	for {
		tt := z.Next()
		switch tt {
		case html.ErrorToken:
			out := strings.TrimSpace(b.String())
			return collapseBlankLines(out)
		case html.TextToken:
			if skip > 0 {
				continue
			}
			raw := string(z.Text()) // Text may be called once per token
			t := strings.Join(strings.Fields(raw), " ")
			atBreak := b.Len() == 0 || strings.HasSuffix(b.String(), " ") || strings.HasSuffix(b.String(), "\n")
			if t == "" {
				if raw != "" && !atBreak {
					b.WriteByte(' ')
				}
				continue
			}
			if md {
				t = escapeMarkdown(t)
			}
			if isSpace(raw[0]) && !atBreak {
				b.WriteByte(' ')
			}
			b.WriteString(t)
			if isSpace(raw[len(raw)-1]) {
				b.WriteByte(' ')
			}
		case html.StartTagToken, html.EndTagToken, html.SelfClosingTagToken:
			name, hasAttr := z.TagName()
			tag := string(name)
			start := tt != html.EndTagToken
			switch tag {
			case "script", "style", "head", "title":
				if tt == html.StartTagToken {
					skip++
				} else if tt == html.EndTagToken && skip > 0 {
					skip--
				}
			case "br":
				if md {
					b.WriteString("\n\n") // a paragraph: RichText has no hard line break
				} else {
					b.WriteByte('\n')
				}
			case "p", "div", "table", "blockquote", "pre":
				newline(2)
			case "tr":
				if md {
					newline(2)
				} else {
					newline(1)
				}
			case "td", "th":
				if start {
					if cur := b.String(); cur != "" && !strings.HasSuffix(cur, "\n") {
						b.WriteString(" | ")
					}
				}
			case "h1", "h2", "h3", "h4", "h5", "h6":
				newline(2)
				if start {
					mark(strings.Repeat("#", int(tag[1]-'0')) + " ")
				}
			case "li":
				if start {
					newline(1)
					// A bullet as text, also in Markdown, keeps RichText
					// from re-flowing lists.
					b.WriteString("• ")
				}
			case "ul", "ol":
				newline(2)
			case "b", "strong":
				mark("**")
			case "i", "em":
				mark("*")
			case "hr":
				newline(2)
				b.WriteString("———")
				newline(2)
			case "a":
				if start {
					url := ""
					for hasAttr {
						var k, val []byte
						k, val, hasAttr = z.TagAttr()
						if string(k) == "href" {
							url = string(val)
						}
					}
					href = append(href, url)
					mark("[")
				} else if len(href) > 0 {
					url := href[len(href)-1]
					href = href[:len(href)-1]
					switch {
					case url == "":
						mark("]")
					case md:
						b.WriteString("](" + url + ")")
					default:
						b.WriteString(" <" + url + ">")
					}
				}
			}
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\t' || c == '\r' }

// markdownEscaper escapes the characters RichText's Markdown would read as
// markup.
var markdownEscaper = strings.NewReplacer(`\`, `\\`, "*", `\*`, "_", `\_`, "[", `\[`, "]", `\]`, "#", `\#`, "`", "\\`")

func escapeMarkdown(s string) string { return markdownEscaper.Replace(s) }

func collapseBlankLines(s string) string {
	lines := strings.Split(s, "\n")
	var out []string
	blank := 0
	for _, l := range lines {
		l = strings.TrimRight(l, " ")
		if strings.TrimSpace(l) == "" {
			blank++
			if blank > 1 {
				continue
			}
			out = append(out, "")
			continue
		}
		blank = 0
		out = append(out, strings.TrimLeft(l, " "))
	}
	return strings.Join(out, "\n")
}
