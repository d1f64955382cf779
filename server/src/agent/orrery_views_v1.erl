%% Orrery's views of a node for the editor, loaded with the agent and removed with it:
%% supervision trees (dynamic children named by their Registry key, identical siblings
%% grouped), ETS tables (by name, or every table of the node), a page of processes, and
%% where a module's source is (go to definition). Everything here only reads and is bounded.
%% Keep this file ASCII only, no macros, no -include.
-module(orrery_views_v1).
-export([sup_tree/1, ets_info/2, ets_named/2, ets_all/1, processes/1, source_of/3]).

%% Supervision trees per application: [{App, Tree}] where Tree is
%% #{pid, name, id, type, module, children, child_count}; a child's name is its
%% registered name, else its id, else (a dynamic child, id undefined) its Registry key,
%% else its module. Siblings with the same module and type and no name of their own
%% (neither registered nor in a Registry) are one node #{group => true, count, pids, ids}
%% standing for them all; a group of supervisors has the children of all its members,
%% grouped in turn (100 acceptor supervisors: their connections, wherever they are).
%% Bounded by depth, nodes per supervisor, and children looked at per supervisor.
sup_tree(Limits) ->
    Depth = maps:get(depth, Limits, 6),
    Items = maps:get(items, Limits, 100),
    Regs = orrery_names_v1:registries(),
    lists:filtermap(
      fun({App, _, _}) ->
              case catch application_controller:get_master(App) of
                  Master when is_pid(Master) ->
                      case catch application_master:get_child(Master) of
                          {Pid, Name} when is_pid(Pid) ->
                              {true, {App, sup_node(Pid, Name, supervisor, Depth, Items, Regs)}};
                          _ -> false
                      end;
                  _ -> false
              end
      end, application:which_applications()).

sup_node(Pid, Id, Type, Depth, Items, Regs) ->
    Base = node_info(Pid, Id, Type, Regs),
    case Type of
        supervisor when Depth > 0 ->
            Children = try supervisor:which_children(Pid) catch _:_ -> [] end,
            Base#{children => children(lists:sublist(Children, 5000), Depth - 1, Items, Regs),
                  child_count => length(Children)};
        _ -> Base
    end.

node_info(Pid, Id, Type, Regs) ->
    Module = orrery_agent_v1:callback_module(Pid),
    Registered = case erlang:process_info(Pid, registered_name) of
                     {registered_name, R} when is_atom(R) -> R;
                     _ -> nil
                 end,
    {Registry, Key} = case Registered of
                          nil ->
                              case orrery_names_v1:name_of(Pid, Regs, []) of
                                  {via, _, {Reg, K}} -> {Reg, K};
                                  _ -> {nil, nil}
                              end;
                          _ -> {nil, nil}
                      end,
    Name = if Registered =/= nil -> Registered;
              Id =/= undefined -> Id;
              Key =/= nil -> Key;
              true -> Module
           end,
    #{pid => Pid, name => orrery_agent_v1:trunc(Name, #{depth => 4, items => 10, binary => 60, budget => 100}),
      id => orrery_agent_v1:trunc(Id, #{depth => 4, items => 10, binary => 60, budget => 100}),
      type => Type, module => Module, registry => Registry,
      key => orrery_agent_v1:trunc(Key, #{depth => 4, items => 10, binary => 60, budget => 100}),
      named => Registered =/= nil orelse Key =/= nil}.

%% The children of a supervisor as nodes: the unnamed ones grouped by module and type.
children(Children, Depth, Items, Regs) ->
    Infos = [child_info(C, Regs) || C <- Children],
    Groups = lists:foldl(fun({Key, _, _} = I, Acc) when Key =/= nil ->
                                 Acc#{Key => [I | maps:get(Key, Acc, [])]};
                            (_, Acc) -> Acc
                         end, #{}, Infos),
    Nodes = lists:foldl(
              fun({nil, C, Info}, {Seen, Acc}) -> {Seen, [one_child(C, Info, Depth, Items, Regs) | Acc]};
                 ({Key, C, Info}, {Seen, Acc}) ->
                      case {maps:is_key(Key, Seen), lists:reverse(maps:get(Key, Groups))} of
                          {true, _} -> {Seen, Acc};
                          {false, [_]} -> {Seen#{Key => true}, [one_child(C, Info, Depth, Items, Regs) | Acc]};
                          {false, Members} ->
                              First = one_child(C, Info, Depth, Items, Regs),
                              Few = lists:sublist(Members, 10),
                              Group0 = First#{group => true, count => length(Members),
                                              pids => [P || {_, {_, P, _, _}, _} <- Few],
                                              ids => [maps:get(id, I) || {_, _, I} <- Few]},
                              Group = merged_children(Group0, Members, Depth, Items, Regs),
                              {Seen#{Key => true}, [Group | Acc]}
                      end
              end, {#{}, []}, Infos),
    lists:sublist(lists:reverse(element(2, Nodes)), Items).

%% A group of supervisors: the children of every member (not only the first one's).
merged_children(#{children := _} = Group, Members, Depth, Items, Regs) ->
    All = lists:append([try supervisor:which_children(P) catch _:_ -> [] end
                        || {_, {_, P, supervisor, _}, _} <- Members]),
    Group#{children => children(lists:sublist(All, 5000), Depth - 1, Items, Regs),
           child_count => length(All)};
merged_children(Group, _, _, _, _) ->
    Group.

%% {GroupKey | nil, Child, Info}: a live child with no name of its own can be grouped.
child_info({Id, Pid, Type, _} = C, Regs) when is_pid(Pid) ->
    Info = node_info(Pid, Id, Type, Regs),
    case maps:get(named, Info) of
        true -> {nil, C, Info};
        false -> {{maps:get(module, Info), Type}, C, Info}
    end;
child_info(C, _) -> {nil, C, nil}.

one_child({Id, Pid, Type, Mods}, _, Depth, Items, Regs) when is_pid(Pid) ->
    (sup_node(Pid, Id, Type, Depth, Items, Regs))#{modules => Mods};
one_child({Id, Pid, Type, Mods}, _, _, _, _) ->
    #{pid => Pid, name => Id, type => Type, modules => Mods}.

%% ETS tables by name -> info and the first rows (bounded).
ets_info(Tabs, Limits) ->
    Rows = maps:get(rows, Limits, 5),
    maps:from_list([{T, tab_info(T, Rows, Limits)} || T <- Tabs]).

%% ETS tables named by binaries (no atom is made for a name that names nothing), in
%% order: [Info | nil].
ets_named(Names, Limits) ->
    Rows = maps:get(rows, Limits, 5),
    [case catch binary_to_existing_atom(N, utf8) of
         A when is_atom(A) -> tab_info(A, Rows, Limits);
         _ -> nil
     end || N <- Names].

%% Every table of the node, biggest first: #{total, tables => [Summary]} with at most
%% Max summaries (id, name, named, type, size, memory in bytes, owner, owner_name,
%% protection); no rows.
ets_all(Max) ->
    WordSize = erlang:system_info(wordsize),
    Infos = [S || T <- ets:all(), (S = tab_summary(T, WordSize)) =/= nil],
    Sorted = lists:sort(fun(A, B) -> maps:get(memory, A) >= maps:get(memory, B) end, Infos),
    #{total => length(Infos), tables => lists:sublist(Sorted, Max)}.

tab_summary(T, WordSize) ->
    case ets:info(T) of
        undefined -> nil;
        Info ->
            Owner = proplists:get_value(owner, Info),
            #{id => T,
              name => proplists:get_value(name, Info),
              named => proplists:get_value(named_table, Info),
              type => proplists:get_value(type, Info),
              size => proplists:get_value(size, Info),
              memory => proplists:get_value(memory, Info) * WordSize,
              owner => Owner,
              owner_name => owner_name(Owner),
              protection => proplists:get_value(protection, Info)}
    end.

%% A table owner's registered name, else the module it runs.
owner_name(P) when is_pid(P) ->
    case erlang:process_info(P, registered_name) of
        {registered_name, N} when is_atom(N) -> N;
        _ -> orrery_agent_v1:callback_module(P)
    end;
owner_name(_) -> nil.

tab_info(T, Rows, Limits) ->
    case ets:info(T) of
        undefined -> nil;
        Info ->
            WordSize = erlang:system_info(wordsize),
            First = case proplists:get_value(protection, Info) of
                        private -> [];
                        _ -> first_rows(T, ets:first(T), Rows, [])
                    end,
            #{type => proplists:get_value(type, Info),
              size => proplists:get_value(size, Info),
              memory => proplists:get_value(memory, Info) * WordSize,
              owner => proplists:get_value(owner, Info),
              protection => proplists:get_value(protection, Info),
              rows => orrery_agent_v1:trunc(First, Limits)}
    end.

first_rows(_T, '$end_of_table', _N, Acc) -> lists:reverse(Acc);
first_rows(_T, _K, 0, Acc) -> lists:reverse(Acc);
first_rows(T, K, N, Acc) ->
    first_rows(T, ets:next(T, K), N - 1, lists:reverse(ets:lookup(T, K)) ++ Acc).

%% A page of processes sorted by memory, reductions or message queue length.
processes(Opts) ->
    Sort = maps:get(sort, Opts, memory),
    Offset = maps:get(offset, Opts, 0),
    Limit = maps:get(limit, Opts, 50),
    Keys = [registered_name, memory, reductions, message_queue_len, current_function,
            initial_call],
    All = [{P, I} || P <- erlang:processes(), P =/= self(),
                     I <- [erlang:process_info(P, Keys)], I =/= undefined,
                     not ours(P, I)],
    Sorted = lists:sort(fun({_, A}, {_, B}) ->
                                proplists:get_value(Sort, A) >= proplists:get_value(Sort, B)
                        end, All),
    Page = lists:sublist(Sorted, Offset + 1, Limit),
    #{total => length(All),
      items => [maps:from_list([{pid, P}, {module, orrery_agent_v1:callback_module(P)} | I]) || {P, I} <- Page]}.

%% Orrery's own processes (the guard, the debugger, tracers, rpc workers running our code)
%% are not the user's: left out of the list.
ours(P, I) ->
    Initial = case erlang:process_info(P, dictionary) of
                  {dictionary, D} -> proplists:get_value('$initial_call', D);
                  _ -> undefined
              end,
    lists:any(fun is_ours/1,
              [proplists:get_value(registered_name, I),
               mfa_module(proplists:get_value(current_function, I)),
               mfa_module(proplists:get_value(initial_call, I)),
               mfa_module(Initial)]).

mfa_module({M, _, _}) -> M;
mfa_module(_) -> undefined.

is_ours(A) when is_atom(A) ->
    lists:prefix("orrery_", atom_to_list(A));
is_ours(_) -> false.

%% ---- Where code is defined (go to definition, server/src/live/sources.rs) ----------

%% Where module Name (a binary, 'Elixir.' included) and its function Fun/Arity (binary or
%% nil; Arity nil: any) are defined: nil for no such module, else #{sources => [Path]}
%% (the source path the compiler recorded, then the same file under the module's
%% application directory and the Erlang source next to its beam, when those exist here),
%% line => the function's first line (its debug info, else its docs entry; nil when
%% unknown) and module_line. Never loads the module (beam_lib reads its beam file).
source_of(Name, Fun, Arity) ->
    case orrery_agent_v1:to_module(Name) of
        undefined -> nil;
        Mod ->
            case code:which(Mod) of
                Beam when is_list(Beam) ->
                    Recorded = recorded_source(Mod, Beam),
                    Forms = try read_forms(Mod, Beam) catch _:_ -> [] end,
                    #{sources => [unicode:characters_to_binary(S)
                                  || S <- source_candidates(Recorded, Beam)],
                      line => fun_line(Mod, Forms, Fun, Arity),
                      module_line => module_line(Forms)};
                _ -> nil
            end
    end.

recorded_source(Mod, Beam) ->
    Info = case code:is_loaded(Mod) of
               {file, _} -> try Mod:module_info(compile) catch _:_ -> [] end;
               false ->
                   case beam_lib:chunks(Beam, [compile_info]) of
                       {ok, {_, [{compile_info, I}]}} -> I;
                       _ -> []
                   end
           end,
    case proplists:get_value(source, Info) of
        S when is_list(S) -> S;
        _ -> nil
    end.

%% Debian installs beams built elsewhere: the recorded path (/build/...) is gone, but the
%% file may be under the application's directory (lib/elixir/lib/enum.ex is enum.ex under
%% code:lib_dir(elixir)/lib), or found by filelib:find_source from the beam.
source_candidates(Recorded, Beam) ->
    AppDir = filename:dirname(filename:dirname(Beam)),
    Moved = case Recorded of
                nil -> [];
                _ ->
                    Parts = filename:split(Recorded),
                    [P || N <- lists:seq(2, max(2, length(Parts) - 1)),
                          N =< length(Parts),
                          P <- [filename:join([AppDir | lists:nthtail(length(Parts) - N, Parts)])],
                          P =/= Recorded, filelib:is_regular(P)]
            end,
    Found = try filelib:find_source(Beam) of
                {ok, F} -> [F];
                _ -> []
            catch _:_ -> []
            end,
    dedup([S || S <- [Recorded | Moved] ++ Found, S =/= nil]).

dedup([]) -> [];
dedup([H | T]) -> [H | dedup([X || X <- T, X =/= H])].

%% The line of Fun/Arity's definition: the abstract code's function form (the def line),
%% else the docs entry's annotation (for Elixir, the line of its @doc).
%% An Elixir macro is the function 'MACRO-name' with one more argument.
fun_line(_, _, nil, _) -> nil;
fun_line(Mod, Forms, Fun, Arity) ->
    Macro = <<"MACRO-", Fun/binary>>,
    Want = fun(F, A) ->
                   (same_name(F, Fun) andalso (Arity =:= nil orelse A =:= Arity))
                       orelse (same_name(F, Macro) andalso (Arity =:= nil orelse A =:= Arity + 1))
           end,
    case [L || {function, Anno, F, A, _} <- Forms, Want(F, A),
               L <- [anno_line(Anno)], L =/= nil] of
        [L | _] -> L;
        [] -> doc_line(Mod, Fun, Arity)
    end.

module_line(Forms) ->
    case [L || {attribute, Anno, module, _} <- Forms, L <- [anno_line(Anno)]] of
        [L | _] when is_integer(L) -> L;
        _ -> nil
    end.

same_name(F, Fun) when is_atom(F), is_binary(Fun) -> atom_to_binary(F, utf8) =:= Fun;
same_name(_, _) -> false.

read_forms(Mod, Beam) ->
    case beam_lib:chunks(Beam, [debug_info]) of
        {ok, {_, [{debug_info, {debug_info_v1, Backend, Data}}]}} ->
            case Backend:debug_info(erlang_v1, Mod, Data, []) of
                {ok, Forms} -> Forms;
                _ -> []
            end;
        _ ->
            case beam_lib:chunks(Beam, [abstract_code]) of
                {ok, {_, [{abstract_code, {_, Forms}}]}} -> Forms;
                _ -> []
            end
    end.

doc_line(Mod, Fun, Arity) ->
    Entries = case try orrery_agent_v1:get_docs(Mod) catch _:_ -> error end of
                  {ok, {docs_v1, _, _, _, _, _, E}} -> E;
                  {docs_v1, _, _, _, _, _, E} -> E;
                  _ -> []
              end,
    Fits = fun(A, Meta) ->
                   D = case is_map(Meta) of true -> maps:get(defaults, Meta, 0); false -> 0 end,
                   Arity =:= nil orelse (Arity =< A andalso Arity >= A - D)
           end,
    case [L || {{K, F, A}, Anno, _, _, Meta} <- Entries, K =:= function orelse K =:= macro,
               same_name(F, Fun), Fits(A, Meta), L <- [anno_line(Anno)], L =/= nil] of
        [L | _] -> L;
        [] -> nil
    end.

anno_line(Anno) ->
    try erl_anno:line(Anno) of
        L when is_integer(L), L > 0 -> L;
        _ -> nil
    catch _:_ -> nil
    end.
